"""`workbench.distributed.local`: local ranks started without mlx.launch get its environment, write to our
stdout/stderr themselves, and end together: a failing rank stops the others, and so does a signal to
the launcher. The ranks here are small Python scripts (no MLX); every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from workbench.distributed.local import ring_hosts, run_ranks
from workbench.errors import UserError

# Each rank reports its environment, says it is ready (a file), waits for the others to be, then does what
# argv[1] says for its rank.
RANK = r"""
import json, os, signal, sys, time
from pathlib import Path
rank = int(os.environ["MLX_RANK"])
action = sys.argv[1].split(",")[rank]
folder = Path(sys.argv[2])
hosts = json.loads(Path(os.environ["MLX_HOSTFILE"]).read_text())
print(f"RANK {rank} {json.dumps({'hosts': hosts})}", flush=True)  # one write: the ranks share our stdout
print(f"rank {rank} on stderr", file=sys.stderr, flush=True)
def stopped(signum, frame):
    print(f"rank {rank} got {signal.Signals(signum).name}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
signal.signal(signal.SIGINT, signal.SIG_IGN if action == "deaf" else stopped)
(folder / f"ready{rank}").write_text(str(os.getpid()))
for _ in range(300):  # until every rank is ready to be stopped (30 s at most)
    if all((folder / f"ready{r}").exists() for r in range(len(sys.argv[1].split(",")))):
        break
    time.sleep(0.1)
if action == "ok":
    sys.exit(0)
if action.startswith("fail"):
    sys.exit(int(action[4:]))
if action == "die":
    os.kill(os.getpid(), signal.SIGKILL)
for _ in range(600):  # wait (60 s at most) to be stopped
    time.sleep(0.1)
sys.exit(9)
"""


def rank_command(folder: Path, actions: str) -> list[str]:
    """One run's ranks, with `folder` (new) for their ready files."""
    folder.mkdir()
    (folder / "rank.py").write_text(RANK)
    return [sys.executable, str(folder / "rank.py"), actions, str(folder)]


def test_ranks_get_mlx_launch_environment_and_write_to_our_output(tmp_path, capfd):
    assert run_ranks(rank_command(tmp_path / "ok", "ok,ok,ok"), 3, 40100) == 0
    out, err = capfd.readouterr()
    hosts = [["127.0.0.1:40100"], ["127.0.0.1:40101"], ["127.0.0.1:40102"]]
    assert ring_hosts(3, 40100) == hosts  # as mlx.launch --starting-port 40100 -n 3 writes it
    seen = {int(line.split()[1]): json.loads(line.split(" ", 2)[2]) for line in out.splitlines() if line.startswith("RANK ")}
    assert seen == {r: {"hosts": hosts} for r in range(3)}
    assert all(f"rank {r} on stderr" in err for r in range(3))


def test_a_failing_rank_stops_the_others_and_sets_the_exit_code(tmp_path, capfd):
    assert run_ranks(rank_command(tmp_path / "fail", "wait,fail3"), 2, 40200) == 3
    out, err = capfd.readouterr()
    assert "rank 0 got SIGTERM" in out  # stopped, as mlx.launch stops them
    assert "workbench: rank 1 exited with code 3; stopping the other ranks" in err
    assert run_ranks(rank_command(tmp_path / "die", "die,wait"), 2, 40200) == 128 + signal.SIGKILL
    out, err = capfd.readouterr()
    assert "rank 1 got SIGTERM" in out and "workbench: rank 0 was killed by SIGKILL" in err


def test_a_command_that_cannot_start_is_one_line():
    with pytest.raises(UserError, match="cannot start /no/such/python"):
        run_ranks(["/no/such/python", "-c", "pass"], 2, 40600)


def test_the_command_line_form_passes_the_output_and_the_exit_code_on(tmp_path):
    """`python -m workbench.distributed.local` (what scripts use in place of mlx.launch)."""
    done = subprocess.run([sys.executable, "-m", "workbench.distributed.local", "-n", "2", "--starting-port", "40400",
                           "--", *rank_command(tmp_path / "cli", "ok,fail5")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 5, done.stderr
    assert done.stdout.count("RANK ") == 2 and "rank 1 on stderr" in done.stderr


def test_sigterm_to_the_launcher_stops_every_rank(tmp_path):
    """The ranks get SIGINT (their stop signal); one that ignores it is killed after the grace period."""
    launcher = (f"import sys; from workbench.distributed.local import run_ranks; "
                f"sys.exit(run_ranks({rank_command(tmp_path / 'ranks', 'wait,deaf')!r}, 2, 40300, grace=2))")
    proc = subprocess.Popen([sys.executable, "-c", launcher], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    ready = [tmp_path / "ranks" / f"ready{r}" for r in (0, 1)]
    try:
        for _ in range(300):  # bounded (30 s): both ranks are up
            if all(f.exists() and f.read_text() for f in ready):
                break
            assert proc.poll() is None
            time.sleep(0.1)
        pids = [int(f.read_text()) for f in ready]
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "rank 0 got SIGINT" in out and "rank 1 got" not in out
    for pid in pids:  # both are gone: rank 1 was killed, and the launcher reaped them
        assert not Path(f"/proc/{pid}").exists()

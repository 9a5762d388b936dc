"""`workbench train grpo --local-ranks 2`: data-parallel GRPO over two local ranks gives the one-rank run's
metrics and adapters (same seed, same global batch), and a lost rank ends the run instead of hanging it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import workbench_env

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def grpo_args(taught_model, tmp_path):
    """At temperature 2 the taught model's completions differ within a group: rewards spread, the update matters."""
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps({"prompt": "What is 12+30?", "answer": "42"}) + "\n" for _ in range(10)))
    (tmp_path / "run.toml").write_text("temperature = 2.0\nbeta = 0.1\n")
    return ["--config", tmp_path / "run.toml", "--model", taught_model, "--suite", suite, "--group-size", 4,
            "--prompts-per-step", 3, "--max-tokens", 80, "--verifiers", "math,format:0.5", "--seed", 5, "--lr", 0.01]


def workbench(*argv, timeout=240):
    return subprocess.run([sys.executable, "-m", "workbench", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=workbench_env())


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_local_ranks_train_like_one(grpo_args, tmp_path):
    import mlx.core as mx

    one = workbench("train", "grpo", *grpo_args, "--steps", 2, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = workbench("train", "grpo", *grpo_args, "--steps", 2, "--out", tmp_path / "two", "--local-ranks", 2,
                    "--starting-port", free_port())
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("adapters: ") == 1  # rank 0 alone reports (and writes)
    a, b = rows(tmp_path / "one"), rows(tmp_path / "two")
    assert [r["step"] for r in b] == [1, 2]
    assert a[0]["reward_std"] > 0 and a[0]["frac_reward_zero_std"] < 1  # the groups' rewards differ
    for ra, rb in zip(a, b):
        for key in ("reward", "reward_std", "reward_math", "reward_format", "accuracy", "completion_length", "loss",
                    "kl", "clip_fraction", "groups_used", "thinking_share"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    samples = [(tmp_path / r / "samples.jsonl").read_text() for r in ("one", "two")]
    assert samples[0] == samples[1]  # the same completions were sampled
    wa, wb = (mx.load(str(tmp_path / r / "adapters.safetensors")) for r in ("one", "two"))
    assert wa.keys() == wb.keys()
    assert any(np.abs(np.array(v)).max() > 1e-4 for k, v in wa.items() if "lora_b" in k)  # the adapters moved
    # Adam divides by sqrt(v): where a gradient entry is float noise, summation order moves it by a
    # fraction of one step (lr 1e-2). So: all within a tenth of a step, nearly all within 1e-5.
    diff = np.concatenate([np.abs(np.array(wb[k]) - np.array(wa[k])).ravel() for k in wa])
    assert diff.max() < 1e-3 and np.mean(diff < 1e-5) > 0.99, (diff.max(), np.mean(diff < 1e-5))
    state = json.loads((tmp_path / "two" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2


def rank_pids(root: int) -> dict[int, int]:
    """{rank: pid} of the ranks under process `root` (by the MLX_RANK the launcher gave them)."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, todo = {}, [root]
    while todo:
        pid = todo.pop()
        children = [c for c, parent in parents.items() if parent == pid]
        todo += children
        try:
            if b"--rank-of" in Path(f"/proc/{pid}/cmdline").read_bytes():
                env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
                found.update({int(x.split("=", 1)[1]): pid for x in env if x.startswith("MLX_RANK=")})
        except OSError:
            continue
    return found


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_lost_rank_ends_training_with_a_message(grpo_args, tmp_path, how):
    """Killed: the launcher (or the ring's closed socket) ends the run. Frozen (SIGSTOP, like a dropped link):
    rank 0's deadline on the training collectives does."""
    run = tmp_path / "run"
    log = open(tmp_path / "launch.log", "w+")
    argv = [*grpo_args, "--steps", 1000, "--out", run, "--local-ranks", 2, "--deadline", 3, "--starting-port", free_port()]
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "train", "grpo", *map(str, argv)],
                            stdout=log, stderr=subprocess.STDOUT, env=workbench_env(), start_new_session=True)
    pids = {}
    try:
        for _ in range(1200):  # bounded (120 s): until the run has a step behind it
            if (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().strip():
                break
            assert proc.poll() is None, (tmp_path / "launch.log").read_text()
            time.sleep(0.1)
        pids = rank_pids(proc.pid)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[1], signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        for _ in range(600):  # bounded (60 s) wait for rank 0 to give up
            if not Path(f"/proc/{pids[0]}").exists() or Path(f"/proc/{pids[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                break
            time.sleep(0.1)
        else:
            pytest.fail("rank 0 still running 60 s after losing rank 1")
        if how == "frozen":
            os.kill(pids[1], signal.SIGKILL)
        proc.wait(timeout=30)
        log.seek(0)
        output = log.read()
        if how == "killed":  # the launcher sees the dead rank first (or rank 0's ring error does): either names it
            assert "rank 1" in output, output
        else:  # no socket error to see: rank 0's deadline found it
            assert "workbench: error: lost rank 1 (127.0.0.1): no answer for" in output, output
        assert len(rows(run)) < 1000  # it did not finish: it stopped
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        log.close()

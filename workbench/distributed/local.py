"""N ranks on this machine over loopback, started as `mlx.launch --hosts 127.0.0.1 -n N --backend ring`
starts them (the same MLX_RANK and MLX_HOSTFILE), but without mlx.launch. No MLX.

mlx.launch relays each rank's output from a thread that select()s on the rank's stdin pipe too; a
pipe's write end is always writable, so the loop never sleeps and takes most of a core for the
whole run, a core the ranks need. Here the ranks write to our stdout/stderr themselves and we only
wait. Hosts elsewhere still go through mlx.launch (it brings the ssh).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import UserError

HOST = "127.0.0.1"
GRACE = 30.0  # seconds stopped ranks get to finish (a deadline, their last words) before SIGKILL


def ring_hosts(n: int, starting_port: int) -> list[list[str]]:
    """The ring hostfile mlx.launch writes for local ranks: one address per rank, ports counting up."""
    return [[f"{HOST}:{starting_port + rank}"] for rank in range(n)]


def run_ranks(command: list[str], n: int, starting_port: int, grace: float = GRACE) -> int:
    """Run `command` as ranks 0..n-1 and wait for all of them; 0 if every rank succeeds.

    When a rank fails, the others get SIGTERM (as mlx.launch does) and this returns the failed rank's
    code (128 + the signal if it was killed). Ctrl+C or SIGTERM here sends the ranks SIGINT, their
    stop signal (rank 0 of a cluster then tells the others), and returns 130. Ranks still running
    `grace` seconds later, or at a second Ctrl+C, are killed. The ranks stay in our process group.
    """
    with tempfile.TemporaryDirectory(prefix="workbench-ranks-") as tmp:
        hostfile = Path(tmp) / "ring.json"
        # One rank has no ring: mlx.launch writes an empty file then (and MLX's ring refuses it).
        hostfile.write_text((json.dumps(ring_hosts(n, starting_port)) if n > 1 else "") + "\n")
        ended: queue.SimpleQueue = queue.SimpleQueue()  # (rank, exit code), as each rank ends
        running: dict[int, subprocess.Popen] = {}
        with _sigterm_as_interrupt():
            try:
                for rank in range(n):
                    env = {**os.environ, "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile)}
                    try:
                        running[rank] = proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
                    except OSError as e:
                        raise UserError(f"cannot start {command[0]} ({e.strerror or e})") from None
                    threading.Thread(target=lambda r=rank, p=proc: ended.put((r, p.wait())), daemon=True).start()
                while running:
                    rank, code = ended.get()
                    del running[rank]
                    if code:
                        print(f"workbench: rank {rank} {_how(code)}; stopping the other ranks", file=sys.stderr, flush=True)
                        _stop(running, ended, signal.SIGTERM, grace)
                        return code if code > 0 else 128 - code
                return 0
            except KeyboardInterrupt:
                _stop(running, ended, signal.SIGINT, grace)
                return 130
            finally:
                for proc in running.values():  # left only by an error here: no rank outlives us
                    proc.kill()


def _how(code: int) -> str:
    if code > 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


def _stop(running: dict, ended: queue.SimpleQueue, sig: int, grace: float) -> None:
    """Send `sig` to the running ranks and wait for them; SIGKILL what is left after `grace` s or at Ctrl+C."""
    for proc in running.values():
        proc.send_signal(sig)
    deadline = time.monotonic() + grace
    try:
        while running:
            del running[ended.get(timeout=max(0.0, deadline - time.monotonic()))[0]]
    except (queue.Empty, KeyboardInterrupt):
        for proc in running.values():
            proc.kill()
        for proc in running.values():
            proc.wait()
        running.clear()


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM to the launcher stops the ranks as Ctrl+C does (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """`python -m workbench.distributed.local -n N [--starting-port P] -- COMMAND...`, for scripts and tests:
    `mlx.launch -n N --backend ring -- COMMAND...` on this machine."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m workbench.distributed.local")
    parser.add_argument("-n", type=int, required=True, help="ranks")
    parser.add_argument("--starting-port", type=int, default=32323, help="rank r listens on this port + r")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    return run_ranks(command, args.n, args.starting_port)


if __name__ == "__main__":
    sys.exit(main())

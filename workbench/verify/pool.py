"""Run verifiers in worker processes with a hard timeout, from any thread.

Math-Verify's own timeout uses signal.alarm, which only works on the main thread, and a sympy
bomb (10^{10^{10}}, factorial(10**9)) cannot be interrupted inside the process evaluating it.
So verifiers run in worker processes (`python -m workbench.verify.worker`, JSON lines over
pipes: nothing is forked from the caller, so its threads, e.g. the MLX engine, do not matter,
and the caller's `__main__` is never re-imported). A worker that overruns its timeout is
killed and replaced; the caller gets Verdict(None, "timed out after ... s").

One deadline: the request carries the timeout, and the worker hands it to the code sandbox as its
wall clock (ending a little before, so an overrunning completion scores 0 with its reason rather than
None). A killed worker takes its sandboxes with it (bubblewrap's --die-with-parent; elsewhere they
share the worker's process group, which is killed whole) and its host temp folders are removed.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from workbench.verify.registry import Verdict, check_name, default_timeout
from workbench.verify.sandbox import kill_group, remove_leftovers

WORKER_MEMORY_MB = 2048  # address-space limit per worker: a bomb hits MemoryError, not the machine
STARTUP_TIMEOUT = 120.0  # importing sympy on a busy machine; not counted against a verification
# Each worker leads a process group (killed whole), in the caller's session (its scheduling group).
NEW_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


class WorkerDied(Exception):
    pass


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.verify.worker", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **NEW_GROUP,
        )
        self.ready = False
        self._buffer = b""

    def read_line(self, timeout: float) -> bytes | None:
        """One line from the worker, or None after `timeout` seconds; WorkerDied at EOF."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise WorkerDied()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def is_ready(self) -> bool:
        """Has it finished starting up? (non-blocking)"""
        if not self.ready and select.select([self.process.stdout.fileno()], [], [], 0)[0]:
            try:
                self.ready = self.read_line(0.5) is not None
            except WorkerDied:
                return False
        return self.ready

    def ask(self, request: bytes, timeout: float) -> dict | None:
        if not self.ready:
            if self.read_line(STARTUP_TIMEOUT) is None:
                raise WorkerDied()
            self.ready = True
        try:
            self.process.stdin.write(request)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerDied() from None
        line = self.read_line(timeout)
        return None if line is None else json.loads(line)

    def kill(self) -> None:
        kill_group(self.process.pid)  # the worker and any sandbox it started
        self.process.kill()
        self.process.wait()
        remove_leftovers(self.process.pid)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class VerifierPool:
    """`workers` processes; `verify` waits for a free worker, so any number of threads may share one pool."""

    def __init__(self, workers: int | None = None, memory_mb: int = WORKER_MEMORY_MB) -> None:
        self.size = workers or max(1, min(4, os.cpu_count() or 1))
        self._memory_mb = memory_mb
        self._idle: list[_Worker] = [_Worker(memory_mb) for _ in range(self.size)]
        self._available = threading.Condition()
        self._closed = False

    def _take(self) -> _Worker:
        """An idle worker, preferring one that has started up (a replacement may still be importing sympy)."""
        with self._available:
            while not self._idle:
                self._available.wait()
            worker = next((w for w in self._idle if w.is_ready()), self._idle[0])
            self._idle.remove(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._available:
            self._idle.append(worker)
            self._available.notify()

    def verify(self, name: str, completion, example, timeout: float | None = None) -> Verdict:
        check_name(name)
        timeout = default_timeout(name) if timeout is None else timeout
        if self._closed:
            raise RuntimeError("verifier pool is closed")
        try:
            request = {"verifier": name, "completion": completion, "example": example, "timeout": timeout}
            request = (json.dumps(request) + "\n").encode()
        except (TypeError, ValueError) as e:
            return Verdict(None, f"input is not JSON: {e}"[:200])
        worker = self._take()
        healthy = False
        try:
            answer = worker.ask(request, timeout)
            healthy = answer is not None
            if healthy:
                return Verdict.from_dict(answer)
            return Verdict(None, f"timed out after {timeout:g} s")
        except (WorkerDied, ValueError):
            return Verdict(None, "verifier process died (out of memory?)")
        finally:
            if not healthy:  # timed out, died, or interrupted mid-request (a late answer must not leak)
                worker.kill()
                worker = _Worker(self._memory_mb)  # starts now; imports while the caller moves on
            self._give_back(worker)

    def map(self, name: str, items, timeout: float | None = None) -> list[Verdict]:
        """Verdicts for (completion, example) pairs, in input order, verified in parallel."""
        items = list(items)
        if not items:
            return []
        with ThreadPoolExecutor(min(self.size, len(items))) as executor:
            return list(executor.map(lambda item: self.verify(name, item[0], item[1], timeout), items))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in range(self.size):
            self._take().kill()

    def __enter__(self) -> "VerifierPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: VerifierPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> VerifierPool:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VerifierPool()
            atexit.register(_shared.close)
        return _shared


def verify_with_timeout(name: str, completion, example, timeout: float | None = None) -> Verdict:
    """One verdict within `timeout` seconds (the verifier's default if None), from any thread."""
    return shared_pool().verify(name, completion, example, timeout)

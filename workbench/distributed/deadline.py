"""Collectives with a deadline, so a dead rank or a dropped link never leaves the others hanging.

MLX collectives block without a timeout. A watchdog thread watches the main thread: while it is
inside a collective (or generating, where every token is one), it must show progress within
`seconds`; otherwise the watchdog reports the lost host, lets `on_lost` fail open requests, and
ends the process. A peer that dies outright is usually noticed sooner: the ring backend raises
"connection to a peer was lost", which `Control.lost()` turns into the same report.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Callable

EXIT_LOST = 3
GRACE = 1.0  # seconds for open HTTP responses to carry the error before the process ends


def peers_text(rank: int, hosts: list[str]) -> str:
    """Who this rank lost: the other rank of two, or every peer (a stalled ring cannot tell which)."""
    others = [f"rank {r} ({h})" for r, h in enumerate(hosts) if r != rank]
    return others[0] if len(others) == 1 else "one of " + ", ".join(others)


class Watchdog:
    def __init__(self, seconds: float, lost: str, on_lost: Callable[[str], None] = lambda message: None):
        self.seconds, self.lost, self.on_lost = seconds, lost, on_lost
        self._what: str | None = None
        self._limit = seconds
        self._since = time.monotonic()
        self._fired = threading.Lock()
        threading.Thread(target=self._watch, name="collective-deadline", daemon=True).start()

    @contextlib.contextmanager
    def guard(self, what: str, seconds: float | None = None):
        """Within this block the main thread must call `beat()` (or leave) within the deadline."""
        previous = (self._what, self._limit)
        # The watchdog reads _what first: set the clock before it, so it never pairs a new _what with an old clock.
        self._since = time.monotonic()
        self._limit = seconds or self.seconds
        self._what = what
        try:
            yield
        finally:
            self._since = time.monotonic()
            self._limit = previous[1]
            self._what = previous[0]

    def beat(self) -> None:
        self._since = time.monotonic()

    def relabel(self, what: str, seconds: float | None = None) -> None:
        """Inside a guard: a new phase with its own deadline (e.g. the prompt is done, now tokens)."""
        self._since = time.monotonic()
        self._limit = seconds or self.seconds
        self._what = what

    def _watch(self) -> None:
        while True:
            time.sleep(0.25)
            what, limit = self._what, self._limit
            if what and time.monotonic() - self._since > limit:
                self.fire(f"lost {self.lost}: no answer for {limit:g} s while {what}")

    def fire(self, message: str) -> None:
        """Report, fail open requests, exit. Safe from any thread; only the first call acts."""
        if not self._fired.acquire(blocking=False):
            return
        print(f"workbench: error: {message}", file=sys.stderr, flush=True)
        try:
            self.on_lost(message)
        finally:
            time.sleep(GRACE)
            os._exit(EXIT_LOST)


class Control:
    """The small collectives the ranks coordinate with, each under the watchdog."""

    def __init__(self, group, watchdog: Watchdog):
        import mlx.core as mx
        from mlx_lm.generate import generation_stream

        self.mx, self.group, self.watchdog = mx, group, watchdog
        # The same stream as generation: collectives on one stream run in issue order on every rank.
        self.stream = generation_stream

    def _sum(self, values, dtype, what: str, seconds: float | None = None):
        mx = self.mx
        with self.watchdog.guard(what, seconds), mx.stream(self.stream):
            out = mx.distributed.all_sum(mx.array(values, dtype=dtype), group=self.group)
            mx.eval(out)
        return out

    def broadcast_json(self, obj, what: str = "waiting for rank 0"):
        """Rank 0's `obj` on every rank (the others pass None)."""
        mx = self.mx
        data = json.dumps(obj).encode() if self.group.rank() == 0 else b""
        n = int(self._sum([len(data)], mx.int32, what).item())
        payload = list(data) if data else [0] * n
        out = self._sum(payload, mx.uint8, what)
        return json.loads(bytes(out.tolist()).decode())

    def gather_json(self, obj, what: str = "gathering rank status", seconds: float | None = None) -> list:
        """Every rank's `obj`, in rank order, on every rank (`seconds`: a longer deadline, e.g. after loading)."""
        mx = self.mx
        size, rank = self.group.size(), self.group.rank()
        data = json.dumps(obj).encode()
        lengths = [0] * size
        lengths[rank] = len(data)
        lengths = self._sum(lengths, mx.int32, what, seconds).tolist()
        width = max(lengths)
        rows = [0] * (size * width)
        rows[rank * width: rank * width + len(data)] = list(data)
        flat = self._sum(rows, mx.uint8, what, seconds).tolist()
        return [json.loads(bytes(flat[r * width: r * width + lengths[r]]).decode()) for r in range(size)]

    def any(self, flag: bool, what: str = "agreeing to stop") -> bool:
        return self._sum([int(flag)], self.mx.int32, what).item() > 0

"""The engine protocol: what every engine offers and what a job is. Pure Python, no MLX.

Implementations (each passes `tests/test_engine_contract.py`):
- `thread.ThreadEngine`: the in-process engine, one thread that owns MLX (`run`, `eval`, `compare`, train);
- `process.ProcessEngine`: a `ThreadEngine` in a child process (the app);
- `remote.RemoteEngine`: any OpenAI-compatible server, our cluster's rank 0 included;
- `scripted.ScriptedEngine`: plays scripted events without a model (tests, `scripts/bench_tui.py`).

Consumers take any `Engine` and ask `engine.capabilities` before using an optional method; they never
probe with `hasattr`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

from workbench.engine.events import ChatRequest, Event, ModelInfo


@dataclass(frozen=True)
class Capabilities:
    """The optional parts of the protocol an engine offers (a remote engine knows `steer` once loaded:
    its server says)."""

    call: bool = False  # `call(fn)`: run fn(loaded_model) on the thread that owns MLX (in-process only)
    cluster: bool = False  # `cluster()`: our cluster's per-rank layout and memory (raises if the server has none)
    # Steering the thinking: requests' continue_thinking, max/min_thinking_tokens, effort, answer_on_loop,
    # and jobs' answer_now()/extend(), marked in the stream with `Steered` events.
    steer: bool = False
    # Decoding here: requests' `decoding` (KV-cache bits, a draft model) need the model in this machine's MLX.
    decode: bool = False


@runtime_checkable
class Job(Protocol):
    """The events of one submitted job, in order, ending with exactly one terminal event
    (`Done` or `Failed` for generate; `Loaded` or `Failed` for load)."""

    finished: threading.Event  # set once the terminal event is in

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the job to stop: generation ends within one token with Done(finish_reason=reason)."""

    def stop_reason(self) -> str | None:
        """Why the job was asked to stop, or None."""

    def answer_now(self) -> None:
        """While thinking (`capabilities.steer`): close the thinking at once and let the answer stream."""

    def extend(self) -> None:
        """While thinking (`capabilities.steer`): the model's next `</think>` becomes the wait text."""

    def get(self, timeout: float | None = None) -> Event:
        """The next event; raises queue.Empty after `timeout` seconds."""

    def get_many(self, window: float) -> list[Event]:
        """The next event and every one after it within `window` seconds, up to a terminal one."""

    def __iter__(self) -> Iterator[Event]:
        """Every event, blocking, up to and including the terminal one."""

    def collect(self) -> tuple[str, str, Event]:
        """Block until the end: (thinking, answer, terminal event)."""


@runtime_checkable
class Engine(Protocol):
    info: ModelInfo | None  # the loaded model, None before the first successful load
    capabilities: Capabilities

    def load(self, model: str | Path | None = None, adapter: str | Path | None = None,
             trust_remote_code: bool = False) -> Job:
        """Loading, then Loaded(info) or Failed(one line)."""

    def generate(self, request: ChatRequest) -> Job:
        """Think/Answer deltas, then Done(stats) or Failed(one line). Never raises for a bad request."""

    def memory_gb(self) -> float | None:
        """Peak resident memory (GB, 1e9 bytes) of the process holding the model; None when not known."""

    def close(self, timeout: float = 5.0) -> None:
        """Stop: open jobs end, threads and child processes go."""


class CallableEngine(Engine, Protocol):
    def call(self, fn: Callable[[Any], Any]) -> Any:
        """A Future of fn(loaded model), run on the engine's MLX thread (`capabilities.call`)."""


class ClusterEngine(Engine, Protocol):
    def cluster(self) -> dict:
        """{"ranks": [...]} from our cluster (`capabilities.cluster`); raises UserError where there is none."""

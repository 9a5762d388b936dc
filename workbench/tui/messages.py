"""What the engine workers post to the app (Textual messages as small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from workbench.engine.events import ModelInfo, Stats


@dataclass
class Chunk(Message):
    """Deltas of one response merged over a frame (1/10 s, or 1/5 s on the CPU), so fast streams
    cost few updates."""

    turn: int
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int


@dataclass
class Finished(Message):
    """A response ended: `stats` (Done, including cancelled) or `error` (Failed)."""

    turn: int
    stats: Stats | None
    error: str | None = None


@dataclass
class ModelLoading(Message):
    name: str


@dataclass
class ModelLoaded(Message):
    info: ModelInfo


@dataclass
class ModelFailed(Message):
    message: str

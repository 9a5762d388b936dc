"""What the engine workers post to the app (Textual messages as small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message as UIMessage  # not a chat turn (that is engine.events.Message)

from workbench.engine.events import ModelInfo, Stats


@dataclass
class Chunk(UIMessage):
    """Deltas of one response merged over a frame (1/10 s, or 1/5 s on the CPU), so fast streams
    cost few updates."""

    response_no: int  # the app's count of responses: older ones are ignored
    thinking: str
    answer: str
    thinking_tokens: int
    answer_tokens: int


@dataclass
class Finished(UIMessage):
    """A response ended: `stats` (Done, including cancelled) or `error` (Failed)."""

    response_no: int  # the app's count of responses: older ones are ignored
    stats: Stats | None
    error: str | None = None


@dataclass
class ModelLoading(UIMessage):
    name: str


@dataclass
class ModelLoaded(UIMessage):
    info: ModelInfo


@dataclass
class ModelFailed(UIMessage):
    message: str

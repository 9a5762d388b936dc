"""What the engine workers post to the app (Textual messages as small dataclasses), and the record of a
finished response the app keeps (`Response`)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message as UIMessage  # not a chat turn (that is engine.events.Message)

from workbench.engine.events import ChatRequest, ModelInfo, Stats


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
class Steer(UIMessage):
    """The engine wrote into the thinking (a budget cut, answer now, a loop cut, a "Wait")."""

    response_no: int
    kind: str
    text: str


@dataclass
class Drafting(UIMessage):
    """Speculative decoding so far: draft tokens accepted of those proposed (the status line's live rate)."""

    response_no: int
    accepted: int
    proposed: int


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


@dataclass
class EvalProgress(UIMessage):
    """New lines of a sweep's progress file (parsed, not yet checked), how many were not JSON objects,
    and the exit code once the eval process ended."""

    rows: list
    bad: int
    returncode: int | None = None


@dataclass
class Response:
    """One finished response, as handed on by `WorkbenchApp.response_finished`."""

    prompt: str
    thinking: str
    answer: str
    stats: Stats | None
    error: str | None
    model: ModelInfo | None
    request: ChatRequest
    prompt_turn: int | None = None  # the store's rows of its prompt and of itself (None: not saved)
    response_turn: int | None = None

"""Steering the thinking over our OpenAI-compatible API: the request fields our server reads (ours,
and the names llama.cpp's server and vLLM give the same thing), what the remote engine sends, and how a
response marks the text the engine wrote into the thinking. Pure Python (no MLX).

A server that steers says so in its `GET /v1/models` entry: `"owned_by": "workbench"` and
`"workbench": {"steer": true}`; the remote engine steers only through such a server. A `Steered` event
travels as a delta whose `reasoning_content` is its text (plain OpenAI clients just read more thinking)
and whose `workbench_steered` is `{"kind", "text", "tokens"}`; a non-streamed message lists them all in
`workbench_steered`. The stats extension (`stats`) carries `thinking_cut`, `thinking_extended` and
`inserted_tokens`. While a draft model is used, a chunk with no choices carries `workbench_drafted`
(`{"accepted", "proposed"}` so far) every few tokens, for a live acceptance rate. While a response streams, `POST /v1/chat/completions/<id>/steer` with
`{"action": "answer_now" | "extend"}` steers it live (`id` is the response's).
"""

from __future__ import annotations

from workbench.engine.events import EFFORTS, ChatRequest, Drafted, Steered
from workbench.terminal import encodable

MAX_THINKING_TOKENS = 1 << 20  # a budget beyond this is a mistake, not a wish
# Each ChatRequest field, by every name it may come under: ours first (what the remote engine sends),
# then llama.cpp's server (`thinking_budget_tokens`, -1 for none; `thinking_budget_message`) and
# vLLM's (`thinking_token_budget`).
BUDGET_NAMES = ("max_thinking_tokens", "thinking_budget_tokens", "thinking_token_budget")
MESSAGE_NAMES = ("budget_message", "thinking_budget_message")
EFFORT_NAME = "reasoning_effort"  # OpenAI's; values EFFORTS
MIN_NAME = "min_thinking_tokens"
TEXTS = ("wait_text", "continue_thinking")
FLAGS = ("answer_on_loop", "keep_thinking")
NAMES = (*BUDGET_NAMES, *MESSAGE_NAMES, EFFORT_NAME, MIN_NAME, *TEXTS, *FLAGS)
STEERED = "workbench_steered"
DRAFTED = "workbench_drafted"  # a chunk's {"accepted", "proposed"}: speculative decoding so far (live rate)
ACTIONS = ("answer_now", "extend")  # live steering requests (`Job.answer_now`, `Job.extend`)
KINDS = ("budget", "answer_now", "loop", "wait")  # Steered kinds
CUTS = ("budget", "answer_now", "loop")  # Stats.thinking_cut values


def _count(body: dict, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if name == "thinking_budget_tokens" and value == -1 and not isinstance(value, bool):
        return None  # llama.cpp's "no budget"
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_THINKING_TOKENS:
        raise ValueError(f"'{name}' must be a whole number of tokens from 0 to {MAX_THINKING_TOKENS}")
    return value


def _one_of(body: dict, names: tuple, read) -> tuple[str, object] | None:
    """(name, value) of the field given under any of `names`; ValueError when two disagree."""
    given = [(name, read(body, name)) for name in names if body.get(name) is not None]
    for name, value in given[1:]:
        if value != given[0][1]:
            raise ValueError(f"'{given[0][0]}' ({body[given[0][0]]!r}) and '{name}' ({body[name]!r}) disagree: "
                             "send one of them")
    return given[0] if given else None


def text_field(value, where: str) -> str:
    """`value`, a string that encodes as UTF-8; ValueError naming `where` otherwise (our server's check
    of every text in a request)."""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} is not valid Unicode (it holds a lone surrogate such as \\ud800)") from None
    return value


def _string(body: dict, name: str) -> str:
    return text_field(body[name], f"'{name}'")


def request_steering(body: dict) -> dict:
    """The ChatRequest steering fields of an OpenAI-style request body (only those it sets);
    ValueError naming the field for a bad value or two names that disagree."""
    fields: dict = {}
    budget = _one_of(body, BUDGET_NAMES, _count)
    if budget is not None and budget[1] is not None:
        fields["max_thinking_tokens"] = budget[1]
    minimum = _count(body, MIN_NAME)
    if minimum:
        fields["min_thinking_tokens"] = minimum
    effort = body.get(EFFORT_NAME)
    if effort is not None:
        if effort not in EFFORTS:
            raise ValueError(f"'{EFFORT_NAME}' must be one of {', '.join(EFFORTS)}")
        fields["effort"] = effort
    message = _one_of(body, MESSAGE_NAMES, _string)
    if message is not None:
        fields["budget_message"] = message[1]
    for name in TEXTS:
        if body.get(name) is not None:
            fields[name] = _string(body, name)
    for name in FLAGS:
        if body.get(name) is not None:
            if not isinstance(body[name], bool):
                raise ValueError(f"'{name}' must be true or false")
            fields[name] = body[name]
    return fields


def steering_body(request: ChatRequest) -> dict:
    """What the remote engine adds to a request body for our server: the request's steering, by our names."""
    default = ChatRequest(())
    body = {"max_thinking_tokens": request.max_thinking_tokens, MIN_NAME: request.min_thinking_tokens or None,
            EFFORT_NAME: request.effort, "continue_thinking": request.continue_thinking or None}
    for name in ("budget_message", "wait_text", *FLAGS):
        if getattr(request, name) != getattr(default, name):
            body[name] = getattr(request, name)
    return {k: v for k, v in body.items() if v is not None}


def steered_delta(event: Steered) -> dict:
    """A Steered event as a stream delta (its text is thinking to clients that know no better)."""
    return {"reasoning_content": event.text, STEERED: {"kind": event.kind, "text": event.text, "tokens": event.tokens}}


def steered_from(marker) -> Steered | None:
    """The Steered event a server's marker stands for; None for anything malformed."""
    if not (isinstance(marker, dict) and marker.get("kind") in KINDS and isinstance(marker.get("text"), str)):
        return None
    tokens = marker.get("tokens")
    plausible = isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= MAX_THINKING_TOKENS
    return Steered(marker["kind"], encodable(marker["text"]), tokens if plausible else 0)


def serves_steering(entry) -> bool:
    """Whether a `/v1/models` entry is our server saying it steers."""
    return (isinstance(entry, dict) and entry.get("owned_by") == "workbench"
            and isinstance(entry.get("workbench"), dict) and entry["workbench"].get("steer") is True)


def drafted_from(marker) -> "Drafted | None":
    """The Drafted event a server's `workbench_drafted` stands for; None for anything implausible."""
    if not isinstance(marker, dict):
        return None
    accepted, proposed = marker.get("accepted"), marker.get("proposed")
    counts = (accepted, proposed)
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_THINKING_TOKENS * 64 for n in counts):
        return None
    return Drafted(accepted, proposed) if accepted <= proposed else None

"""What callers send to an engine and what comes back. Pure Python, no MLX.

Every engine (the local MLX thread, a remote endpoint, the fakes in tests) speaks this
vocabulary: a job yields `Think` / `Answer` deltas and ends with exactly one `Done` or `Failed`.
An engine that steers the thinking (`Capabilities.steer`) also yields `Steered`: text it wrote into the
thinking itself (a budget message before `</think>`, a "Wait" instead of an early `</think>`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Union

from workbench.terminal import encodable


@dataclass(frozen=True)
class Sampling:
    """Sampling settings. None means "use the model profile's default"."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def over(self, defaults: "Sampling") -> "Sampling":
        """These settings, with unset ones taken from `defaults`."""
        return Sampling(
            **{f.name: getattr(defaults, f.name) if getattr(self, f.name) is None else getattr(self, f.name) for f in fields(self)}
        )

    @classmethod
    def from_dict(cls, d: dict) -> "Sampling":
        return cls(**{k: d[k] for k in (f.name for f in fields(cls)) if k in d})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Message:
    """One chat turn. Assistant turns keep their thinking here; prompts leave it out."""

    role: str  # "system" | "user" | "assistant"
    content: str
    thinking: str | None = None


BUDGET_MESSAGE = "\n\nConsidering the limited time, I have to give the solution based on the thinking directly now.\n"
WAIT_TEXT = "\nWait"
EFFORTS = ("off", "low", "medium", "high", "max")
KV_BITS = (4, 8)
DRAFT_MODES = ("on", "auto")


@dataclass(frozen=True)
class Decoding:
    """How the engine decodes: KV-cache quantization and speculative decoding with a draft model.
    None means "use the model profile's default"; an engine that runs no model here refuses any of it."""

    kv_bits: int | None = None  # 4 or 8: quantize the KV cache; 0: keep it in fp16
    kv_start: int | None = None  # quantize once the cache holds this many tokens (0: from the start)
    draft: str | None = None  # a draft model (name or folder) sharing the tokenizer; "": none
    draft_tokens: int | None = None  # tokens the draft proposes per step
    draft_mode: str | None = None  # "on", or "auto": measure with and without the draft, keep the faster
    # Tokens the model may attend to, prompt and response (0: the model's own, its max_position_embeddings):
    # a longer prompt is refused, the response stops where it is full.
    context: int | None = None

    def over(self, defaults: "Decoding") -> "Decoding":
        return Decoding(**{f.name: getattr(defaults, f.name) if getattr(self, f.name) is None else getattr(self, f.name)
                           for f in fields(self)})

    @property
    def local(self) -> bool:
        """Whether this asks for anything (then the engine must run the model here); kv_bits 0 and draft ""
        ask for the default (fp16, no draft)."""
        return bool(self.kv_bits or self.draft or self.context) or any(
            v is not None for v in (self.kv_start, self.draft_tokens, self.draft_mode))

    @classmethod
    def from_dict(cls, d: dict) -> "Decoding":
        return cls(**{k: d[k] for k in (f.name for f in fields(cls)) if k in d})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ChatRequest:
    """What to generate. Options past `sampling` steer the thinking; the engine must declare
    `Capabilities.steer` to honour them (a steering request to one that cannot fails in one line)."""

    messages: tuple[Message, ...]
    sampling: Sampling = Sampling()
    stop_on_loop: bool = False  # end generation (finish reason "loop") once the thinking repeats itself
    # The thinking written so far (the model's own, perhaps edited): generation continues inside the
    # still-open think block after it, reusing the engine's KV cache up to the first changed token.
    continue_thinking: str | None = None
    # At this many thinking tokens: budget_message, `</think>`, answer. A continue_thinking longer than
    # this is cut to it first: what the model would have answered had its thinking stopped there.
    max_thinking_tokens: int | None = None
    min_thinking_tokens: int | None = None  # a `</think>` before this many becomes wait_text: thinking goes on
    effort: str | None = None  # one of EFFORTS: a max_thinking_tokens from the model's profile ("off": no thinking)
    budget_message: str = BUDGET_MESSAGE
    wait_text: str = WAIT_TEXT
    answer_on_loop: bool = False  # a thinking loop answers now (Steered "loop") instead of stopping
    keep_thinking: bool = False  # earlier assistant turns keep their thinking in the prompt
    decoding: Decoding = Decoding()  # KV-cache bits and draft model (engines that run the model here)

    @property
    def steers(self) -> bool:
        """Whether this request needs an engine that can steer the thinking."""
        return bool(self.continue_thinking or self.max_thinking_tokens is not None or self.min_thinking_tokens
                    or self.effort or self.answer_on_loop)

    @classmethod
    def single(cls, prompt: str, sampling: Sampling = Sampling()) -> "ChatRequest":
        return cls((Message("user", prompt),), sampling)


@dataclass
class Stats:
    """Per-response numbers. Times in seconds; token counts use the model's tokenizer."""

    prompt_tokens: int = 0
    thinking_tokens: int = 0
    answer_tokens: int = 0
    time_to_first_token: float = 0.0  # request start (incl. prompt processing) to first token
    thinking_time: float = 0.0  # first token to the end of thinking
    answer_time: float = 0.0  # end of thinking to the last token
    total_time: float = 0.0
    peak_memory_gb: float = 0.0
    finish_reason: str = ""  # "stop" | "length" | "cancelled" | "loop" | "error"
    thinking_closed: bool = False  # False: thinking was cut off (max tokens, stop) or absent
    prompt_cached_tokens: int = 0  # of prompt_tokens, how many came from the KV cache (not recomputed)
    thinking_cut: str = ""  # the engine closed the thinking: "budget" | "answer_now" | "loop" ("" = the model did)
    thinking_extended: int = 0  # early closes replaced by the wait text (minimum thinking, extend)
    inserted_tokens: int = 0  # tokens the engine wrote (Steered), counted in neither thinking nor answer
    kv_bits: int = 0  # the KV cache was quantized to these bits from kv_start tokens on (0: fp16)
    kv_start: int = 0
    draft: str = ""  # the draft model of speculative decoding ("" none)
    draft_tokens: int = 0  # tokens it proposed per step
    draft_proposed: int = 0  # tokens the draft proposed in all
    draft_accepted: int = 0  # of those, tokens the model accepted (and emitted)
    draft_auto: str = ""  # draft mode auto's verdict: "kept" (faster with the draft) | "dropped"
    context: int = 0  # the tokens it could attend to, prompt and response (0: unbounded)

    @property
    def generated_tokens(self) -> int:
        return self.thinking_tokens + self.answer_tokens

    @property
    def thinking_tps(self) -> float:
        return self.thinking_tokens / self.thinking_time if self.thinking_time > 0 else 0.0

    @property
    def answer_tps(self) -> float:
        return self.answer_tokens / self.answer_time if self.answer_time > 0 else 0.0

    @property
    def draft_acceptance(self) -> float:
        return self.draft_accepted / self.draft_proposed if self.draft_proposed else 0.0

    @property
    def generation_tps(self) -> float:
        t = self.thinking_time + self.answer_time
        return self.generated_tokens / t if t > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(thinking_tps=self.thinking_tps, answer_tps=self.answer_tps, generation_tps=self.generation_tps,
                 draft_acceptance=self.draft_acceptance)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Stats":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def summary(self) -> str:
        """One line, e.g. 'thought for 12.4 s, 1,832 tokens · answer 212 tokens at 45.1 tok/s · …'."""
        parts = [
            f"thought for {self.thinking_time:.1f} s, {self.thinking_tokens:,} tokens"
            + (f" ({CUT_WORDS.get(self.thinking_cut, self.thinking_cut)})" if self.thinking_cut else
               " (cut off)" if self.thinking_tokens and not self.thinking_closed else "")
            + (f", extended {self.thinking_extended}x" if self.thinking_extended else ""),
            f"answer {self.answer_tokens:,} tokens at {self.answer_tps:.1f} tok/s",
            f"{self.generation_tps:.1f} tok/s overall",
            f"first token {self.time_to_first_token:.2f} s",
            f"prompt {self.prompt_tokens:,} tokens" + (f", {self.prompt_cached_tokens:,} cached" if self.prompt_cached_tokens else ""),
        ]
        if self.kv_bits:
            parts.append(f"KV cache {self.kv_bits}-bit" + (f" from {self.kv_start:,} tokens" if self.kv_start else ""))
        if self.draft:
            parts.append(self.draft_line())
        if self.peak_memory_gb:
            parts.append(f"peak {memory_text(self.peak_memory_gb)}")
        parts.append(f"length: the {self.context:,}-token context is full" if self.context_full
                     else self.finish_reason or "?")
        return " · ".join(parts)

    @property
    def context_full(self) -> bool:
        """Generation stopped because the context held no more."""
        return (self.finish_reason == "length" and self.context > 0
                and self.prompt_tokens + self.generated_tokens + self.inserted_tokens >= self.context)

    def draft_line(self) -> str:
        """E.g. 'draft r1-distill-qwen-1.5b-4bit: 61% accepted (244/400)' (auto: ', kept' / ', dropped')."""
        line = (f"draft {self.draft}: {self.draft_acceptance:.0%} accepted "
                f"({self.draft_accepted:,}/{self.draft_proposed:,})")
        return line + (f", {self.draft_auto} by auto" if self.draft_auto else "")


def memory_text(gb: float) -> str:
    """A memory size given in GB (1e9 bytes): MB below 1 GB, so a small model does not read 0.00 GB."""
    return f"{gb:.2f} GB" if gb >= 1 else f"{gb * 1000:.0f} MB" if gb >= 0.001 else f"{gb * 1e6:.0f} kB"


CUT_WORDS = {"budget": "budget reached", "answer_now": "answered now", "loop": "loop cut"}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    model_type: str = ""
    quantization: str = ""  # e.g. "4-bit", "" for full precision
    parameters: int = 0
    adapter: str | None = None
    location: str = "local"  # "local", or the endpoint URL of a remote engine
    profile: dict = field(default_factory=dict)
    device: str = ""  # where MLX computes: "gpu" or "cpu" (this machine's cores); "" when not known
    context: int = 0  # tokens the model can attend to (its config's max_position_embeddings); 0 when not known


# ---- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Think:
    text: str
    tokens: int = 0  # model tokens this delta accounts for (0 when unknown)

    def __post_init__(self) -> None:
        _encodable_text(self)


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int = 0

    def __post_init__(self) -> None:
        _encodable_text(self)


def _encodable_text(delta) -> None:
    """The one place model text enters: a lone surrogate (a server's JSON may send "\\ud800") becomes
    U+FFFD here, so the store, the panes, `run` and the next prompt can all encode the text."""
    if type(delta.text) is str and not delta.text.isascii():
        object.__setattr__(delta, "text", encodable(delta.text))


@dataclass(frozen=True)
class Steered:
    """The engine wrote into the thinking: `kind` "budget" | "answer_now" | "loop" (it then closed the
    thinking: the answer follows) or "wait" (an early close replaced: thinking goes on). `text` is
    thinking text (the budget message, the wait text) that the model did not write."""

    kind: str
    text: str
    tokens: int = 0

    @property
    def closes(self) -> bool:
        return self.kind != "wait"


@dataclass(frozen=True)
class Drafted:
    """Speculative decoding so far, every few tokens while a draft is used (the status line's live rate):
    tokens the draft proposed, and of those, tokens the model accepted."""

    accepted: int
    proposed: int


@dataclass(frozen=True)
class Done:
    stats: Stats


@dataclass(frozen=True)
class Failed:
    message: str  # one line, shown to the user as is


@dataclass(frozen=True)
class Loading:
    model: str


@dataclass(frozen=True)
class Loaded:
    info: ModelInfo


Event = Union[Think, Answer, Steered, Drafted, Done, Failed, Loading, Loaded]
TERMINAL = (Done, Failed, Loaded)


def event_to_dict(event: Event) -> dict:
    """The `--json` line format: {"type": "think", "text": ...}, ..., {"type": "done", "stats": {...}}."""
    if isinstance(event, (Think, Answer)):
        return {"type": type(event).__name__.lower(), "text": event.text}
    if isinstance(event, Steered):
        return {"type": "steered", "kind": event.kind, "text": event.text}
    if isinstance(event, Drafted):
        return {"type": "drafted", "accepted": event.accepted, "proposed": event.proposed}
    if isinstance(event, Done):
        return {"type": "done", "stats": event.stats.to_dict()}
    if isinstance(event, Failed):
        return {"type": "error", "message": event.message}
    if isinstance(event, Loading):
        return {"type": "loading", "model": event.model}
    if isinstance(event, Loaded):
        return {"type": "loaded", "model": asdict(event.info)}
    raise TypeError(f"not an event: {event!r}")


def merge_deltas(events) -> list:
    """Adjacent deltas of the same kind joined (for tests and storage)."""
    out: list = []
    for e in events:
        if out and isinstance(e, (Think, Answer)) and type(out[-1]) is type(e):
            out[-1] = replace(out[-1], text=out[-1].text + e.text, tokens=out[-1].tokens + e.tokens)
        else:
            out.append(e)
    return out

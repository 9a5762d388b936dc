"""Model profiles: per-model defaults (sampling, prompt rules, published claims).

A profile comes from, in order: built-in defaults, a built-in entry matched on the model's
name, and a `profile.toml` (or `profile.json`) in the model folder. Requests override sampling.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from workbench.engine.events import DRAFT_MODES, EFFORTS, KV_BITS, Decoding, Sampling
from workbench.errors import ModelLoadError, UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROFILE_FILES = ("profile.toml", "profile.json")


@dataclass(frozen=True)
class Profile:
    # DeepSeek's recommendation for R1 and its distills.
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32768
    force_think: bool = True  # end the generation prompt with "<think>\n"
    system_prompt: str | None = None  # DeepSeek: no system prompt
    # Published scores, suite name -> percent, e.g. {"aime24": 28.9, "math500": 83.9}.
    claims: dict = field(default_factory=dict)
    # Thinking budgets (tokens) per effort level, e.g. {"low": 256}; unset levels follow the model's size.
    effort: dict = field(default_factory=dict)
    # Decoding (docs/models.md): the KV cache quantized to kv_bits (4 or 8; 0 = fp16) once it holds kv_start
    # tokens (mlx-lm's default 5000); a draft model sharing the tokenizer for speculative decoding.
    kv_bits: int = 0
    kv_start: int = 5000
    draft: str = ""
    draft_tokens: int = 3
    draft_mode: str = "auto"
    context: int = 0  # tokens of prompt and response the model may attend to (0: its own, max_position_embeddings)

    @property
    def sampling(self) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens)

    @property
    def decoding(self) -> Decoding:
        return Decoding(kv_bits=self.kv_bits, kv_start=self.kv_start, draft=self.draft,
                        draft_tokens=self.draft_tokens, draft_mode=self.draft_mode, context=self.context)

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def decoding_problem(d: Decoding) -> str | None:
    """What is wrong with these decoding settings, in words, or None."""
    if d.kv_bits not in (None, 0, *KV_BITS):
        return f"kv_bits must be {' or '.join(map(str, KV_BITS))} (0: a full-precision KV cache), not {d.kv_bits!r}"
    if d.kv_start is not None and (not isinstance(d.kv_start, int) or d.kv_start < 0):
        return f"kv_start must be a token count (0 or more), not {d.kv_start!r}"
    if d.draft is not None and not isinstance(d.draft, str):
        return f"draft must be a model name or folder, not {d.draft!r}"
    if d.draft_tokens is not None and (not isinstance(d.draft_tokens, int) or not 1 <= d.draft_tokens <= 64):
        return f"draft_tokens must be between 1 and 64, not {d.draft_tokens!r}"
    if d.draft_mode is not None and d.draft_mode not in DRAFT_MODES:
        return f"draft_mode must be {' or '.join(DRAFT_MODES)}, not {d.draft_mode!r}"
    if d.context is not None and (not isinstance(d.context, int) or isinstance(d.context, bool) or d.context < 0):
        return f"context must be a token count (0: the model's own), not {d.context!r}"
    return None


class ContextExceeded(UserError):
    """A prompt leaves no room in the context (an OpenAI server answers `context_length_exceeded`)."""


def model_context(config: dict, tokenizer=None) -> int | None:
    """Tokens the model can attend to (prompt + completion): its config's max_position_embeddings (a
    multimodal model's text_config's), else the tokenizer's model_max_length; None when neither says."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    for value in (config.get("max_position_embeddings"), text.get("max_position_embeddings"),
                  getattr(tokenizer, "model_max_length", None)):
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 40:
            return value
    return None


def request_context(asked: int | None, own: int | None, model: str) -> int | None:
    """The context a request runs within: the one it asks for (None or 0: the model's own, None when unknown);
    more than the model's own is refused (positions it was never trained on)."""
    if not asked:
        return own
    if own is not None and asked > own:
        raise UserError(f"a context of {asked:,} tokens is more than {model}'s own context of {own:,} tokens "
                        f"(max_position_embeddings in its config.json): set {own:,} or less")
    return asked


def completion_room(prompt_tokens: int, max_tokens: int | None, context: int) -> int:
    """The tokens a response may take within `context` after a prompt of `prompt_tokens`: `max_tokens` capped
    to what is left (None or 0: all of it). ContextExceeded when the prompt leaves nothing."""
    room = context - prompt_tokens
    if room < 1:
        raise ContextExceeded(f"the prompt is {prompt_tokens:,} tokens, it leaves no room in the context of "
                              f"{context:,} tokens: set a longer context (--context, the app's settings, "
                              f"profile.toml `context`) or shorten the chat")
    return room if not max_tokens or max_tokens < 0 else min(max_tokens, room)


# Thinking-token budgets per effort level by model size (parameters up to the first number): small
# distills reach an answer in fewer tokens before they start to wander; "max" is no budget.
EFFORT_BY_SIZE: list[tuple[float, dict]] = [
    (3e9, {"low": 256, "medium": 1024, "high": 4096}),
    (20e9, {"low": 512, "medium": 2048, "high": 8192}),
    (float("inf"), {"low": 1024, "medium": 4096, "high": 16384}),
]


def effort_budget(profile: Profile, level: str, parameters: int = 0) -> int | None:
    """The thinking budget of an effort level (None: unbounded). "off" is the prompt's business
    (`prompt.build_prompt(enable_thinking=False)`), not a budget."""
    if level not in EFFORTS or level == "off":
        raise UserError(f"unknown effort {level!r}: use one of {', '.join(e for e in EFFORTS if e != 'off')} (or off)")
    if level in profile.effort:
        value = profile.effort[level]
        return None if value in (None, "", "max") or (isinstance(value, int) and value < 0) else int(value)
    if level == "max":
        return None
    for limit, budgets in EFFORT_BY_SIZE:
        if parameters <= limit:
            return budgets[level]
    return None


# Substring of the model folder name (lower case) -> profile values. First match wins.
BUILT_IN: list[tuple[str, dict]] = [
    ("deepseek-r1", {"temperature": 0.6, "top_p": 0.95, "max_tokens": 32768}),
]


def read_profile_file(model_dir: Path) -> dict:
    for name in PROFILE_FILES:
        path = model_dir / name
        if not path.exists():
            continue
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if name.endswith(".toml") else json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{path}: not a valid profile ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path}: a profile must be a table of settings")
        return data
    return {}


def load_profile(model_dir: Path) -> Profile:
    values: dict = {}
    lowered = model_dir.name.lower()
    for needle, preset in BUILT_IN:
        if needle in lowered:
            values.update(preset)
            break
    values.update(read_profile_file(model_dir))
    profile = Profile.from_dict(values)
    problem = decoding_problem(profile.decoding)
    if problem:
        where = next((model_dir / n for n in PROFILE_FILES if (model_dir / n).exists()), model_dir)
        raise ModelLoadError(f"{where}: {problem}")
    return profile

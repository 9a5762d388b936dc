"""Prompt building for reasoning models, after DeepSeek's usage notes for R1:
no system prompt unless the user gives one; the generation prompt ends with `<think>\\n` (added only
when the chat template does not add it); earlier assistant turns enter the prompt without their
thinking (the caller keeps it in full). Pure Python: the tokenizer is anything with
`apply_chat_template(messages, add_generation_prompt=True, tokenize=False)`.
"""

from __future__ import annotations

import re

from workbench.engine.events import Message
from workbench.engine.splitter import CLOSE, OPEN

_THINK_BLOCK = re.compile(re.escape(OPEN) + r".*?" + re.escape(CLOSE), re.DOTALL)


def strip_thinking(text: str) -> str:
    """Remove think blocks (and anything before a stray `</think>`) from an assistant turn."""
    text = _THINK_BLOCK.sub("", text)
    if CLOSE in text:
        text = text.rsplit(CLOSE, 1)[1]
    if OPEN in text:  # an unclosed block: the rest is thinking
        text = text.split(OPEN, 1)[0]
    return text.strip()


def prompt_messages(messages, system_prompt: str | None = None, keep_thinking: bool = False) -> list[dict]:
    """Chat-template messages: thinking dropped from assistant turns (kept, as a think block before the
    answer, with `keep_thinking`); optional system prompt."""
    out = []
    if system_prompt and not any(m.role == "system" for m in messages):
        out.append({"role": "system", "content": system_prompt})
    for m in messages:
        content = strip_thinking(m.content) if m.role == "assistant" else m.content
        if m.role == "assistant" and keep_thinking and m.thinking:
            content = f"{OPEN}\n{m.thinking.strip()}\n{CLOSE}\n\n{content}"
        out.append({"role": m.role, "content": content})
    return out


def can_turn_thinking_off(tokenizer) -> bool:
    """Whether the chat template has a switch for thinking (Qwen3-style `enable_thinking`)."""
    return "enable_thinking" in str(getattr(tokenizer, "chat_template", None) or "")


def ensure_think_prefix(prompt: str) -> str:
    """The generation prompt ending in `<think>\\n`, without doubling one the template added."""
    stripped = prompt.rstrip(" ")
    if stripped.endswith(OPEN + "\n"):
        return stripped
    if stripped.endswith(OPEN):
        return stripped + "\n"
    return prompt + OPEN + "\n"


def opens_thinking(prompt: str) -> bool:
    """True when the prompt leaves a `<think>` block open, so generation starts inside it."""
    return prompt.rfind(OPEN) > prompt.rfind(CLOSE)


def build_prompt(tokenizer, messages: list[Message] | tuple[Message, ...], *, force_think: bool = True,
                 system_prompt: str | None = None, keep_thinking: bool = False, thinking: bool = True) -> str:
    """`thinking=False`: the template's `enable_thinking=False` (check `can_turn_thinking_off` first)."""
    extra = {} if thinking else {"enable_thinking": False}
    text = tokenizer.apply_chat_template(
        prompt_messages(messages, system_prompt, keep_thinking), add_generation_prompt=True, tokenize=False, **extra
    )
    return ensure_think_prefix(text) if force_think and thinking else text

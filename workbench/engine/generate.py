"""Generation as a stream of Think/Answer/Done events, on the caller's thread.

Built on mlx-lm's `generate_step` with the tokenizer's streaming detokenizer and our
`ReasoningSplitter`; per token it adds only the split and the phase bookkeeping.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

from workbench.engine.events import Answer, ChatRequest, Done, Sampling, Stats, Think
from workbench.engine.loader import LoadedModel
from workbench.engine.memory import wired_limit
from workbench.engine.prompt import build_prompt, opens_thinking
from workbench.engine.splitter import ReasoningSplitter

StopCheck = Callable[[], "str | None"]  # returns a finish reason to stop with, or None


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    # Chat templates usually write the BOS token themselves; do not add a second one.
    bos = getattr(tokenizer, "bos_token", None)
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def stream_reasoning(loaded: LoadedModel, request: ChatRequest, stop: StopCheck | None = None) -> Iterator:
    profile = loaded.profile
    prompt = build_prompt(loaded.tokenizer, request.messages, force_think=profile.force_think,
                          system_prompt=profile.system_prompt)
    yield from stream_prompt(loaded.model, loaded.tokenizer, prompt, request.sampling.over(profile.sampling), stop)


def stream_prompt(model, tokenizer, prompt: str, sampling: Sampling, stop: StopCheck | None = None) -> Iterator:
    """Events for one completion of an already-templated prompt."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_sampler

    start = time.perf_counter()
    if sampling.seed is not None:
        mx.random.seed(sampling.seed)
    mx.reset_peak_memory()
    tokens = encode_prompt(tokenizer, prompt)
    splitter = ReasoningSplitter(start_in_thinking=opens_thinking(prompt))
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    eos = set(tokenizer.eos_token_ids)
    sampler = make_sampler(temp=sampling.temperature or 0.0, top_p=sampling.top_p or 0.0)
    stats = Stats(prompt_tokens=len(tokens))
    first = think_end = None
    finish = "length"

    def account(deltas: list, was_thinking: bool, now: float) -> list:
        nonlocal think_end
        thinking = was_thinking or splitter.phase == "think"
        if thinking:
            stats.thinking_tokens += 1
        else:
            stats.answer_tokens += 1
        if think_end is None and splitter.closed:
            think_end = now
        if deltas:
            deltas[0] = type(deltas[0])(deltas[0].text, 1)
        return deltas

    with wired_limit(mx):
        for n, (token, _) in enumerate(
            generate_step(mx.array(tokens), model, max_tokens=sampling.max_tokens or -1, sampler=sampler)
        ):
            now = time.perf_counter()
            if n == 0:
                first = now
                stats.time_to_first_token = now - start
            reason = stop() if stop else None
            if reason:
                finish = reason
                break
            if token in eos:
                finish = "stop"
                break
            detokenizer.add_token(token)
            was_thinking = splitter.phase == "think"
            yield from account(splitter.feed(detokenizer.last_segment), was_thinking, now)

    detokenizer.finalize()
    yield from splitter.feed(detokenizer.last_segment)
    yield from splitter.finish()
    end = time.perf_counter()
    first = first or end
    if stats.thinking_tokens:
        stats.thinking_time = (think_end or end) - first
    if stats.answer_tokens:
        stats.answer_time = end - (think_end or first)
    stats.total_time = end - start
    stats.thinking_closed = splitter.closed
    stats.finish_reason = finish
    stats.peak_memory_gb = mx.get_peak_memory() / 1e9
    yield Done(stats)


__all__ = ["stream_reasoning", "stream_prompt", "encode_prompt", "Think", "Answer"]

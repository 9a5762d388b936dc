"""Generation as a stream of Think/Answer/Steered/Done events, on the caller's thread.

Built on mlx-lm's `generate_step` with the tokenizer's streaming detokenizer and our
`ReasoningSplitter`; per token it adds only the split and the phase bookkeeping.

One mechanism steers the thinking: generation continues from a token prefix, reusing the KV cache of
the part that did not change (`PromptCache`). A continued thinking (`ChatRequest.continue_thinking`), a
budget cut (the budget message and `</think>` appended to what was generated), a "Wait" in place of an
early `</think>` and "answer now" are each such a continuation: the engine stops the step generator,
appends its own tokens, and goes on from the cache, so nothing already computed is computed again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Callable, Iterator

from workbench.engine.decode import KV_GROUP_SIZE, Decoder, Draft, kv_group_size
from workbench.engine.events import (
    BUDGET_MESSAGE, WAIT_TEXT, Answer, ChatRequest, Decoding, Done, Drafted, Sampling, Stats, Steered, Think,
)
from workbench.engine.loader import LoadedModel
from workbench.engine.memory import wired_limit
from workbench.engine.profiles import completion_room, effort_budget, model_context, request_context
from workbench.engine.prompt import build_prompt, can_turn_thinking_off, ensure_think_prefix, opens_thinking
from workbench.engine.splitter import CLOSE, ReasoningSplitter
from workbench.errors import UserError

DRAFTED_EVERY = 16  # tokens between Drafted events while a draft is used
StopCheck = Callable[[], "str | None"]  # returns a finish reason to stop with, or None
SteerCheck = Callable[[], "str | None"]  # returns a steering request ("answer_now", "extend", "loop") or None


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    # Chat templates usually write the BOS token themselves; do not add a second one.
    bos = getattr(tokenizer, "bos_token", None)
    return tokenizer.encode(prompt, add_special_tokens=bos is None or not prompt.startswith(bos))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


DEFAULT_PROMPT_CACHE_GB = 2.0
MAX_KEPT_CACHES = 32  # besides bytes: each generation compares its context with every kept cache


@dataclass
class KeptCache:
    tokens: list[int]  # what `cache` holds, in order
    cache: list
    nbytes: int


class PromptCache:
    """KV caches of recent generations, each with the tokens it holds, for one model. A generation takes
    the one sharing the longest token prefix with its context (a new turn, a regenerate, a fork, a continued
    thinking) and computes only the rest, so a chat whose earlier thinking is dropped from the prompt still
    reuses everything up to the last answer. Kept caches are bounded by `max_bytes`, least recently used
    dropped first; the latest generation's is always kept (a steered generation goes on from it).
    Generations may interleave (a cluster's ranks take turns between requests): each hands back what it took.

    `bytes_per_token`: count a kept cache as its tokens times this, not its measured bytes. A cluster's ranks
    each hold a different share of the model, yet must keep and reuse alike (their pipeline runs the same
    tokens), so they all count the whole model's fp16 bytes per token.
    Engine thread only (it holds MLX arrays)."""

    def __init__(self, max_bytes: int = int(DEFAULT_PROMPT_CACHE_GB * 1e9), bytes_per_token: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.bytes_per_token = bytes_per_token
        self.model = None
        self.decoded_with: tuple | None = None  # the Decoder.key the kept caches were made with
        self.kept: list[KeptCache] = []  # least recently used first

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes for k in self.kept)

    @property
    def latest(self) -> list | None:
        """The latest generation's cache (always kept), or None."""
        return self.kept[-1].cache if self.kept else None

    def take(self, model, tokens: list[int]) -> tuple[list, int]:
        """A cache holding the longest prefix of `tokens` any kept cache shares (leaving at least one token
        to process, which gives the next token's logits), and that prefix's length. A kept cache that is
        all prefix is handed over; one holding more is copied up to the prefix and stays."""
        from mlx_lm.models.cache import make_prompt_cache

        if self.model is not model:
            self.model, self.kept = model, []
        best, keep = None, 0
        for kept in self.kept:
            shared = min(common_prefix(kept.tokens, tokens), len(tokens) - 1)
            if shared > keep or (shared == keep and best is not None and len(kept.tokens) < len(best.tokens)):
                best, keep = kept, shared
        if best is None or keep == 0:
            cache, keep = make_prompt_cache(model), 0
        elif keep == len(best.tokens):
            self.kept.remove(best)
            cache = best.cache
        else:
            self.kept.remove(best)
            self.kept.append(best)  # used: the most recent now
            cache = prefix_copy(best.cache, keep)
        return cache, keep

    def record(self, cache: list, keep: int, tokens: list[int]) -> None:
        """After a generation from `take` (which gave `cache` holding `keep` tokens): the cache holds `tokens`
        (what was kept of the context), plus perhaps one token the step generator had already fed in (a
        dropped eos or `</think>`). A generation that failed midway records nothing: its cache's state is unknown."""
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        if self.model is None:
            return  # cleared meanwhile
        offset = getattr(cache[0], "offset", None) if cache else None
        if not isinstance(offset, int) or offset < keep or not can_trim_prompt_cache(cache):
            return  # not a cache we can account for: nothing kept
        if offset > len(tokens):
            trim_prompt_cache(cache, offset - len(tokens))
            offset = len(tokens)
        held = tokens[:offset]
        # a kept cache that is a prefix of this one is served as well by a copy of this one
        self.kept = [k for k in self.kept if common_prefix(k.tokens, held) < len(k.tokens)]
        size = len(held) * self.bytes_per_token if self.bytes_per_token is not None else cache_bytes(cache)
        self.kept.append(KeptCache(held, cache, size))
        while len(self.kept) > 1 and (self.nbytes > self.max_bytes or len(self.kept) > MAX_KEPT_CACHES):
            self.kept.pop(0)

    def clear(self) -> None:
        self.model, self.kept = None, []


def cache_bytes(cache: list) -> int:
    return sum(c.nbytes for c in cache)


def prefix_copy(cache: list, n: int) -> list:
    """A cache holding the first `n` tokens of `cache`, which stays as it was. Plain and quantized KV caches
    share the kept part's memory until their first new token (which they write to a new buffer); any other
    trimmable cache is copied whole, then trimmed."""
    import copy

    from mlx.utils import tree_map
    from mlx_lm.models.cache import KVCache, QuantizedKVCache, trim_prompt_cache

    if all(type(c) in (KVCache, QuantizedKVCache) for c in cache):
        out = []
        for c in cache:
            view = copy.copy(c)
            view.keys, view.values = tree_map(lambda x: x[..., :n, :], (c.keys, c.values))
            view.offset = n
            out.append(view)
        return out
    out = copy.deepcopy(cache)
    trim_prompt_cache(out, out[0].offset - n)
    return out


@dataclass
class Steering:
    """How one generation steers its thinking (from a ChatRequest and its job)."""

    max_thinking: int | None = None
    min_thinking: int = 0
    budget_message: str = BUDGET_MESSAGE
    wait_text: str = WAIT_TEXT
    take: SteerCheck | None = None  # the job's pending requests
    prefix_tokens: int = 0  # thinking tokens already written (a continuation): they count against budgets
    mid_block: bool = False  # the prompt ends inside a thinking block already begun

    def to_dict(self) -> dict:
        """Everything but `take` (a cluster's rank 0 broadcasts it; each rank takes its own requests)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "take"}

    @classmethod
    def from_dict(cls, data: dict, take: SteerCheck | None = None) -> "Steering":
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data}, take=take)


def plan_reasoning(loaded: LoadedModel, request: ChatRequest) -> tuple[str, Sampling, Steering]:
    """What one request generates from: the templated prompt (with any continued thinking), its sampling over
    the profile's, and its steering (budgets from the request or its effort). The tokenizer only, no MLX, so a
    server can check a request before it reaches the engine, and a cluster's ranks all steer alike."""
    profile, tokenizer = loaded.profile, loaded.tokenizer
    thinking = request.effort != "off"
    if not thinking and not can_turn_thinking_off(tokenizer):
        raise UserError(f"{loaded.info.name} cannot answer without thinking: its chat template has no "
                        f"enable_thinking switch; use effort low or a thinking budget of 0 instead")
    max_thinking = request.max_thinking_tokens
    if max_thinking is None and request.effort and thinking:
        max_thinking = effort_budget(profile, request.effort, loaded.info.parameters)
    prompt = build_prompt(tokenizer, request.messages, force_think=profile.force_think,
                          system_prompt=profile.system_prompt, keep_thinking=request.keep_thinking, thinking=thinking)
    prefix, prefix_tokens = request.continue_thinking or "", 0
    if prefix:
        prompt = ensure_think_prefix(prompt)
        base, full = encode_prompt(tokenizer, prompt), encode_prompt(tokenizer, prompt + prefix)
        prefix_tokens = len(full) - len(base)
        if max_thinking is not None and prefix_tokens > max_thinking:  # "what had it answered at this budget?"
            prefix, prefix_tokens = tokenizer.decode(full[len(base):len(base) + max_thinking]), max_thinking
    steering = Steering(max_thinking=max_thinking, min_thinking=request.min_thinking_tokens or 0,
                        budget_message=request.budget_message, wait_text=request.wait_text,
                        prefix_tokens=prefix_tokens, mid_block=bool(prefix.strip()))
    return prompt + prefix, request.sampling.over(profile.sampling), steering


def stream_reasoning(loaded: LoadedModel, request: ChatRequest, stop: StopCheck | None = None,
                     steer: SteerCheck | None = None, cache: PromptCache | None = None,
                     decoder: Decoder | None = None) -> Iterator:
    """`decoder`: KV-cache bits and draft (`decoder_for`; the engine loads the draft)."""
    prompt, sampling, steering = plan_reasoning(loaded, request)
    steering.take = steer
    yield from stream_prompt(loaded.model, loaded.tokenizer, prompt, sampling, stop, steering, cache, decoder)


def decoder_for(loaded: LoadedModel, decoding: Decoding, draft: Draft | None = None) -> Decoder:
    """The Decoder of a request's decoding settings (already over the profile's); `draft` loaded by the engine.
    UserError for a context longer than the model's own."""
    kv_bits = decoding.kv_bits or 0
    context = request_context(decoding.context, model_context(loaded.config, loaded.tokenizer), loaded.info.name)
    return Decoder(kv_bits=kv_bits, kv_start=max(0, decoding.kv_start or 0), draft=draft,
                   draft_tokens=decoding.draft_tokens or 3, auto=decoding.draft_mode == "auto",
                   kv_group_size=kv_group_size(loaded.config, loaded.info.name) if kv_bits else KV_GROUP_SIZE,
                   context=context)


def single_token(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def stream_prompt(model, tokenizer, prompt: str, sampling: Sampling, stop: StopCheck | None = None,
                  steering: Steering | None = None, cache: PromptCache | None = None,
                  decoder: Decoder | None = None) -> Iterator:
    """Events for one completion of an already-templated prompt. `cache`: the engine's PromptCache to
    reuse (a fresh one by default); `steering`: budgets and the job's steering requests; `decoder`: how
    tokens are decoded (KV-cache bits, a draft; plain by default)."""
    import mlx.core as mx
    from mlx_lm.sample_utils import make_sampler

    start = time.perf_counter()
    if sampling.seed is not None:
        mx.random.seed(sampling.seed)
    mx.reset_peak_memory()
    steering = steering or Steering()
    cache = cache if cache is not None else PromptCache()
    decoder = decoder or Decoder()
    if cache.decoded_with != decoder.key:  # a cache quantized otherwise is not this request's
        cache.clear()
        cache.decoded_with = decoder.key
    tokens = encode_prompt(tokenizer, prompt)  # the context: prompt, then what was generated or inserted
    limit = sampling.max_tokens or -1  # tokens generated or inserted
    if decoder.context:
        limit = completion_room(len(tokens), sampling.max_tokens, decoder.context)
    splitter = ReasoningSplitter(start_in_thinking=opens_thinking(prompt), mid_block=steering.mid_block)
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    if steering.mid_block:  # so a continuation's first token keeps its leading space
        detokenizer.add_token(tokens[-1])
        detokenizer.last_segment
    eos = set(tokenizer.eos_token_ids)
    close_id = single_token(tokenizer, CLOSE)  # min thinking and extend need `</think>` as one token
    sampler = make_sampler(temp=sampling.temperature or 0.0, top_p=sampling.top_p or 0.0)
    stats = Stats(prompt_tokens=len(tokens))
    decoder.describe(stats)
    first = think_end = None
    finish = "length"
    used = 0
    extensions = 0  # extend requests not yet spent on a `</think>`

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

    def over_budget() -> bool:
        return (steering.max_thinking is not None and splitter.phase == "think"
                and steering.prefix_tokens + stats.thinking_tokens >= steering.max_thinking)

    insert = ("budget", steering.budget_message) if over_budget() else None
    segment = 0
    with wired_limit(mx):
        while True:
            if insert is not None:
                kind, text = insert
                insert = None
                closes = kind != "wait"
                detokenizer.finalize()  # what it held back (a trailing space) is the model's, before the cut
                yield from splitter.feed(detokenizer.last_segment)
                ids = tokenizer.encode(text + (CLOSE if closes else ""), add_special_tokens=False)
                for token in ids:  # the detokenizer keeps its place; the inserted text is ours, not its
                    detokenizer.add_token(token)
                detokenizer.last_segment
                tokens += ids
                used += len(ids)
                stats.inserted_tokens += len(ids)
                if closes:
                    yield from splitter.close_thinking()
                    stats.thinking_cut = kind
                    think_end = think_end or time.perf_counter()
                else:
                    splitter.continue_block()
                    stats.thinking_extended += 1
                yield Steered(kind, text, len(ids))
            if limit >= 0 and used >= limit:
                finish = "length"
                break
            prompt_cache, reused = cache.take(decoder.cache_owner(model), tokens)
            if segment == 0:
                stats.prompt_cached_tokens = reused
            segment += 1
            steps = decoder.steps(model, tokens, reused, prompt_cache, limit - used if limit >= 0 else -1,
                                  sampler, stats)
            try:
                for token in steps:
                    now = time.perf_counter()
                    if first is None:
                        first = now
                        stats.time_to_first_token = now - start
                    reason = stop() if stop else None
                    if reason:
                        finish = reason
                        break
                    used += 1
                    thinking = splitter.phase == "think"
                    if thinking and token == close_id and (
                            extensions or steering.prefix_tokens + stats.thinking_tokens < steering.min_thinking):
                        extensions = max(0, extensions - 1)
                        insert = ("wait", steering.wait_text)
                        break
                    if token in eos:
                        finish = "stop"
                        break
                    tokens.append(token)
                    detokenizer.add_token(token)
                    yield from account(splitter.feed(detokenizer.last_segment), thinking, now)
                    if stats.draft_proposed and stats.generated_tokens % DRAFTED_EVERY == 0:
                        yield Drafted(stats.draft_accepted, stats.draft_proposed)
                    if splitter.phase != "think":
                        continue
                    request = steering.take() if steering.take else None
                    if request == "extend":
                        extensions += 1
                    elif request is not None:
                        insert = (request, steering.budget_message)
                        break
                    if over_budget():
                        insert = ("budget", steering.budget_message)
                        break
            finally:
                steps.close()
            cache.record(prompt_cache, reused, tokens)
            if insert is None:
                break

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


__all__ = ["plan_reasoning", "stream_reasoning", "stream_prompt", "encode_prompt", "PromptCache", "Steering", "Think", "Answer"]

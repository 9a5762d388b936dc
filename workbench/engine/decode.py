"""How tokens are decoded: mlx-lm's `generate_step`, or `speculative_generate_step` with a draft model,
with the KV cache quantized to `kv_bits` from `kv_start` tokens on (engine thread only).

`generate.stream_prompt` asks a `Decoder` for each step generator and for the owner of the prompt
cache. With a draft, the cache is one list, the model's layers then the draft's (what mlx-lm's
speculative path takes), owned by the `Draft`, so `PromptCache` trims and reuses both together.
mlx-lm's speculative path slices that list, so a KV cache it quantizes would not reach ours; and the
draft's layers may end one token behind the model's when the generator stops. So drafted generation
runs in segments that continue from the cache (the steering mechanism): a segment ends where the cache
is to be quantized and where `auto` switches, and each begins with the draft's layers aligned to the
model's (trimmed, or fed the tokens they lack).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterator

from workbench.errors import UserError

# Draft mode auto: tokens generated each way (with the draft, then without) before it keeps the faster.
AUTO_TOKENS = 128
KV_GROUP_SIZE = 64  # mlx-lm's default
UNBOUNDED = 2**62


class Draft:
    """A draft model beside the model it drafts for, and what `auto` found with it (engine thread).
    `make_cache` makes their joint prompt cache (`mlx_lm.models.cache.make_prompt_cache` calls it)."""

    def __init__(self, model, draft_model, name: str) -> None:
        self.model, self.draft_model, self.name = model, draft_model, name
        self.faster: dict[int, bool] = {}  # auto's verdict per tokens-per-step: faster with the draft?
        # How auto's verdict becomes final: as measured here, or (a cluster) rank 0's, so every rank keeps alike.
        self.agree: Callable[[bool], bool] = lambda faster: faster

    def make_cache(self) -> list:
        from mlx_lm.models.cache import make_prompt_cache

        return make_prompt_cache(self.model) + make_prompt_cache(self.draft_model)


def check_same_vocabulary(tokenizer, draft_tokenizer, model_name: str, draft_name: str) -> None:
    """A draft proposes token ids the model checks: both must mean the same by every id."""
    if tokenizer.get_vocab() != draft_tokenizer.get_vocab():
        raise UserError(f"draft model {draft_name} does not share {model_name}'s tokenizer (their vocabularies "
                        f"differ): choose a draft of the same family (`workbench models catalog` pairs them)")


@dataclass
class Decoder:
    kv_bits: int = 0  # 0: fp16 cache
    kv_start: int = 0
    draft: Draft | None = None
    draft_tokens: int = 3
    auto: bool = False
    kv_group_size: int = KV_GROUP_SIZE
    context: int | None = None  # tokens of prompt and response the model may attend to (None: unbounded)

    @property
    def key(self) -> tuple:
        """What a reused cache must have been made with (a cache quantized otherwise is not reused)."""
        return (self.kv_bits, self.kv_start if self.kv_bits else 0, self.draft is not None)

    def cache_owner(self, model):
        return self.draft if self.draft is not None else model

    def describe(self, stats) -> None:
        stats.kv_bits, stats.kv_start = self.kv_bits, self.kv_start if self.kv_bits else 0
        stats.context = self.context or 0
        if self.draft is not None:
            stats.draft, stats.draft_tokens = self.draft.name, self.draft_tokens

    def steps(self, model, context: list[int], reused: int, prompt_cache: list, max_tokens: int, sampler,
              stats) -> Iterator[int]:
        """Token ids generated after `context`, whose first `reused` tokens `prompt_cache` holds."""
        if self.draft is None:
            yield from plain_steps(context[reused:], model, max_tokens, sampler, prompt_cache, kv_bits=self.kv_bits or None,
                                   kv_group_size=self.kv_group_size, quantized_kv_start=self.kv_start)
            return
        yield from self._drafted(model, list(context), reused, prompt_cache, max_tokens, sampler, stats)

    def _drafted(self, model, context: list[int], held: int, cache: list, max_tokens: int, sampler,
                 stats) -> Iterator[int]:
        from mlx_lm.generate import maybe_quantize_kv_cache

        layers = len(model.layers)
        k = self.draft_tokens
        verdict = self.draft.faster.get(k)
        plan = [(True, AUTO_TOKENS), (False, AUTO_TOKENS)] if self.auto and verdict is None else []
        rates: list[float] = []
        use_draft = True if plan or verdict is None else verdict
        if not plan and verdict is not None:
            stats.draft_auto = "kept" if verdict else "dropped"
        done, failed = 0, False
        try:
            while max_tokens < 0 or done < max_tokens:
                if plan:
                    use_draft, segment_limit = plan[0]
                else:
                    segment_limit = -1
                if self.kv_bits:
                    maybe_quantize_kv_cache(cache, self.kv_start, self.kv_group_size, self.kv_bits)
                if use_draft:
                    self._align_draft(cache, layers, context, held)
                quantize_at = (self.kv_start if self.kv_bits and hasattr(cache[0], "to_quantized") else None)
                left = max_tokens - done if max_tokens >= 0 else -1
                if segment_limit >= 0:
                    left = segment_limit if left < 0 else min(left, segment_limit)
                n, times = 0, []
                steps = self._segment(model, context, held, cache, layers, left, sampler, use_draft, stats)
                try:
                    for token in steps:
                        context.append(token)
                        n += 1
                        done += 1
                        times.append(time.perf_counter())
                        yield token
                        if quantize_at is not None and len(context) >= quantize_at:
                            break
                finally:
                    steps.close()
                if left >= 0 and n < left and (quantize_at is None or len(context) < quantize_at):
                    return  # the step generator ended by itself
                # Continue from the cache: it holds at most the context, and leaves at least one token to feed.
                held = min(cache[0].offset, len(context) - 1)
                for c in cache[:layers]:
                    c.trim(c.offset - held)
                if plan and n == segment_limit:
                    plan.pop(0)
                    rates.append((n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else 0.0)
                    if not plan:
                        faster = self.draft.agree(rates[0] > rates[1])
                        self.draft.faster[k] = faster
                        use_draft = faster
                        stats.draft_auto = "kept" if faster else "dropped"
        except Exception:
            failed = True
            raise
        finally:  # the caller's PromptCache trims all layers alike: the draft's must hold what the model's do
            if use_draft and not failed:
                self._align_draft(cache, layers, context, min(cache[0].offset, len(context)))

    def _segment(self, model, context, held, cache, layers, limit, sampler, use_draft, stats) -> Iterator[int]:
        import mlx.core as mx
        from mlx_lm.generate import speculative_generate_step

        if not use_draft:  # the model's layers only (the caller quantizes the cache between segments)
            yield from plain_steps(context[held:], model, limit, sampler, cache[:layers])
            return
        prompt = mx.array(context[held:])
        limit = limit if limit >= 0 else UNBOUNDED  # its draft count is min(left, k): -1 would draft nothing
        steps = speculative_generate_step(prompt, model, self.draft.draft_model, num_draft_tokens=self.draft_tokens,
                                          max_tokens=limit, sampler=sampler, prompt_cache=cache)
        n = round_start = 0
        try:
            for token, _, from_draft in steps:
                if n == round_start:  # a step: the draft proposed up to k tokens, the model kept some, then its own
                    stats.draft_proposed += min(self.draft_tokens, limit - n)
                n += 1
                if from_draft:
                    stats.draft_accepted += 1
                else:
                    round_start = n
                yield token
        finally:
            steps.close()

    def _align_draft(self, cache: list, layers: int, context: list[int], held: int) -> None:
        """The draft's layers made to hold context[:held], as the model's do."""
        import mlx.core as mx

        draft_cache = cache[layers:]
        have = draft_cache[0].offset
        if have > held:
            for c in draft_cache:
                c.trim(c.offset - held)
        elif have < held:
            for i in range(have, held, 512):
                self.draft.draft_model(mx.array(context[i:min(i + 512, held)])[None], cache=draft_cache)
                mx.eval([c.state for c in draft_cache])


def plain_steps(prompt: list[int], model, max_tokens: int, sampler, prompt_cache: list, **kv) -> Iterator[int]:
    """mlx-lm's `generate_step` as token ids, closed when the caller stops."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    steps = generate_step(mx.array(prompt), model, max_tokens=max_tokens, sampler=sampler, prompt_cache=prompt_cache, **kv)
    try:
        for token, _ in steps:
            yield token
    finally:
        steps.close()


def kv_group_size(config: dict, model_name: str) -> int:
    """mlx quantizes the cache along the head dimension in groups of 64 (or 32): one must divide it."""
    config = {**config, **config.get("text_config", {})}
    heads = config.get("num_attention_heads") or 1
    head_dim = config.get("head_dim") or (config.get("hidden_size") or 0) // heads
    for size in (KV_GROUP_SIZE, 32):
        if head_dim and head_dim % size == 0:
            return size
    if not head_dim:
        return KV_GROUP_SIZE
    raise UserError(f"{model_name}'s attention heads ({head_dim} wide) are too narrow to quantize its KV cache "
                    f"(MLX needs a multiple of 32): drop kv_bits for this model")

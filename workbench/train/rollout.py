"""Batched group generation: G completions of one prompt decoded together with a KV cache.

The prompt is processed once (batch 1); its cache is repeated G times and the G completions are
decoded in lock-step, one forward pass per token for the whole group. We keep the sampled token
ids (never a re-encoding of the decoded text) and the log-probability of each under the sampling
distribution (logits / temperature), for reference; the loss recomputes them (see grpo.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Group:
    prompt_ids: list[int]
    completions: list[list[int]]  # sampled ids, EOS excluded
    finished: list[bool]  # False: cut at max_tokens
    sample_logprobs: list[list[float]]


def sample_group(model, prompt_ids: list[int], group_size: int, max_tokens: int, eos_ids,
                 temperature: float = 1.0, top_p: float = 1.0) -> Group:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array(prompt_ids)[None], cache=cache)[:, -1, :]
    for c in cache:  # one prompt pass, G copies of its keys and values
        c.keys = mx.repeat(c.keys[..., :c.offset, :], group_size, axis=0)
        c.values = mx.repeat(c.values[..., :c.offset, :], group_size, axis=0)
    logits = mx.repeat(logits, group_size, axis=0)
    eos = mx.array(sorted(set(eos_ids)))
    tokens, logprobs = [], []
    done = mx.zeros((group_size,), dtype=mx.bool_)
    for _ in range(max_tokens):
        token, logprob = _sample(logits, temperature, top_p)
        tokens.append(token)
        logprobs.append(logprob)
        done = done | (token[:, None] == eos[None]).any(axis=1)
        if len(tokens) % 8 == 0:  # sync rarely: checking `done` every token costs a pipeline stall
            mx.eval(done)
            if done.all().item():
                break
        logits = model(token[:, None], cache=cache)[:, -1, :]
        mx.async_eval(logits, done)
    ids = mx.stack(tokens, axis=1).tolist()
    lps = mx.stack(logprobs, axis=1).tolist()
    eos_set = set(eos_ids)
    completions, finished, sample_lps = [], [], []
    for row, lp in zip(ids, lps):
        end = next((j for j, t in enumerate(row) if t in eos_set), None)
        completions.append(row[:end] if end is not None else row)
        finished.append(end is not None)
        sample_lps.append(lp[:len(completions[-1])])
    return Group(list(prompt_ids), completions, finished, sample_lps)


def _sample(logits, temperature: float, top_p: float):
    """(token, log-prob of the token under softmax(logits / temperature)) per row."""
    import mlx.core as mx

    if temperature <= 0:
        token = mx.argmax(logits, axis=-1)
        return token, mx.zeros(token.shape)
    logprobs = logits / temperature
    logprobs = logprobs - mx.logsumexp(logprobs, axis=-1, keepdims=True)
    masked = logprobs
    if 0 < top_p < 1:  # nucleus: keep the smallest set of tokens whose mass reaches top_p
        order = mx.argsort(-logprobs, axis=-1)
        sorted_lp = mx.take_along_axis(logprobs, order, axis=-1)
        cum = mx.cumsum(mx.exp(sorted_lp), axis=-1)
        keep_sorted = (cum - mx.exp(sorted_lp)) < top_p
        keep = mx.put_along_axis(mx.zeros_like(keep_sorted), order, keep_sorted, axis=-1)
        masked = mx.where(keep, logprobs, -mx.inf)
    token = mx.random.categorical(masked, axis=-1)
    return token, mx.take_along_axis(logprobs, token[:, None], axis=-1)[:, 0]

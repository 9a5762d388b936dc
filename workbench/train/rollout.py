"""Batched group generation: G completions of each prompt, every group of a step decoded together
with a KV cache.

Each prompt is processed once; its cache rows are repeated G times and all completions are decoded
in lock-step, one forward pass per token for the whole step. We keep the sampled token
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


NOISE_BLOCK = 8  # tokens of sampling noise drawn per random call (one call per token costs as much as a forward)


def sample_group(model, prompt_ids: list[int], group_size: int, max_tokens: int, eos_ids,
                 temperature: float = 1.0, top_p: float = 1.0) -> Group:
    """One group, drawn from MLX's global random state."""
    return sample_groups(model, [prompt_ids], group_size, max_tokens, eos_ids, temperature, top_p)[0]


def sample_groups(model, prompts: list[list[int]], group_size: int, max_tokens: int, eos_ids,
                  temperature: float = 1.0, top_p: float = 1.0, seeds: list[int] | None = None) -> list[Group]:
    """A group of completions for each prompt, all decoded in one batch: each prompt goes through the
    model once, the prompts' caches are merged into one batch cache by mlx-lm (left-padded; any
    cache type it can batch) and each row repeated G times.
    `seeds`: each group samples from its own random key, so what a group draws does not depend on
    which other groups share the batch (data-parallel ranks draw different shares)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    caches, last = [], []
    for prompt in prompts:
        caches.append(make_prompt_cache(model))
        last.append(model(mx.array(prompt)[None], cache=caches[-1])[:, -1, :])
    cache = [layer[0].merge(list(layer)) for layer in zip(*caches)]
    rows = mx.array([i for i in range(len(prompts)) for _ in range(group_size)])
    for c in cache:
        c.filter(rows)  # each prompt's keys and values, once per completion
    logits = mx.concatenate(last)[rows]
    keys = None if seeds is None else [mx.random.key(s) for s in seeds]
    eos = mx.array(sorted(set(eos_ids)))
    tokens, logprobs = [], []
    done = mx.zeros((len(prompts) * group_size,), dtype=mx.bool_)
    for t in range(max_tokens):
        if keys is not None and t % NOISE_BLOCK == 0:  # Gumbel noise for the next tokens, per group key
            blocks = []
            for g in range(len(prompts)):
                keys[g], key = mx.random.split(keys[g])
                blocks.append(mx.random.gumbel((NOISE_BLOCK, group_size, logits.shape[-1]), key=key))
            noise = mx.concatenate(blocks, axis=1)
        token, logprob = _sample(logits, temperature, top_p, None if keys is None else noise[t % NOISE_BLOCK])
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
    groups = []
    for g, prompt in enumerate(prompts):
        completions, finished, sample_lps = [], [], []
        for row, lp in zip(ids[g * group_size:(g + 1) * group_size], lps[g * group_size:(g + 1) * group_size]):
            end = next((j for j, t in enumerate(row) if t in eos_set), None)
            completions.append(row[:end] if end is not None else row)
            finished.append(end is not None)
            sample_lps.append(lp[:len(completions[-1])])
        groups.append(Group(list(prompt), completions, finished, sample_lps))
    return groups


def _sample(logits, temperature: float, top_p: float, noise=None):
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
    # categorical = argmax of logits plus Gumbel noise; given noise, the draw depends on nothing else
    token = mx.random.categorical(masked, axis=-1) if noise is None else mx.argmax(masked + noise, axis=-1)
    return token, mx.take_along_axis(logprobs, token[:, None], axis=-1)[:, 0]

"""The GRPO objective and its variants (grpo, dr_grpo, dapo); formulas in docs/grpo.md.

Per completion token t of completion i in a group with rewards r:

    A_i    = r_i - mean(r)                      (divided by std(r) + 1e-4 unless dr_grpo)
    ratio  = exp(logp - logp_old)               logp_old: the policy that sampled (see trainer)
    obj    = min(ratio * A_i, clip(ratio, 1 - eps, 1 + eps_high) * A_i)
    kl     = exp(logp_ref - logp) - (logp_ref - logp) - 1     (k3; reference = adapters off)
    loss_t = -(obj - beta * kl)

grpo averages loss_t over each completion's tokens, then over completions; dr_grpo sums over all
tokens and divides by (completions * max_tokens); dapo sums over all tokens and divides by the
number of tokens. Normalisers span the whole optimizer step, so accumulating micro-batches adds
up to exactly the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STD_EPS = 1e-4


def group_advantages(rewards, scale: bool) -> np.ndarray:
    """Mean-centred rewards, optionally divided by the (sample) std; all-equal groups give zeros, not NaN."""
    r = np.asarray(rewards, dtype=np.float64)
    a = r - r.mean()
    if scale:
        std = r.std(ddof=1) if len(r) > 1 else 0.0
        a = a / (std + STD_EPS)
    return a


@dataclass
class Normaliser:
    """What the step's loss is divided by (see module docstring)."""

    loss_type: str
    completions: int  # in the whole optimizer step
    tokens: int  # completion tokens in the whole step
    max_tokens: int


class SharedPrefixCache:
    """A layer's keys and values for a prefix computed once (batch 1) and shared by every row after
    it: a group's prompt. The broadcast is differentiable, so gradients from all rows reach the
    prompt's one forward pass. Speaks mlx-lm's cache protocol (offset, update_and_fetch, make_mask)."""

    def __init__(self) -> None:
        self.keys = self.values = None
        self.offset = 0

    def update_and_fetch(self, keys, values):
        import mlx.core as mx

        if self.keys is not None:
            rows = (keys.shape[0], *self.keys.shape[1:])
            keys = mx.concatenate([mx.broadcast_to(self.keys, rows), keys], axis=2)
            values = mx.concatenate([mx.broadcast_to(self.values, rows), values], axis=2)
        self.keys, self.values, self.offset = keys, values, keys.shape[2]
        return keys, values

    def make_mask(self, n: int, return_array: bool = False, window_size=None):
        from mlx_lm.models.base import create_causal_mask

        return None if n == 1 else create_causal_mask(n, offset=self.offset, window_size=window_size)


def token_logprobs(model, inputs, targets, temperature: float = 1.0, prefix: int = 0):
    """log p(target | everything before it), logits scaled by 1/temperature like the sampler's.

    `prefix`: the first `prefix` inputs are the same in every row (a group's prompt); they go through
    the model once instead of once per row: the same log-probs on the completion targets, (G-1)/G
    less work on the prompt; the prompt's own targets (masked out of every loss) are then 0."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    if prefix > 1 and inputs.shape[0] > 1 and prefix < inputs.shape[1] and _plain_kv_cache(model):
        # Log-probs of the completion targets only (from the prompt's last position on); the
        # prompt's own targets, masked out of every loss, are left at 0.
        cache = [SharedPrefixCache() for _ in make_prompt_cache(model)]
        head = model(inputs[:1, :prefix], cache=cache)[:, -1:]
        tail = model(inputs[:, prefix:], cache=cache)
        rows = tail.shape[0]
        logits = mx.concatenate([mx.broadcast_to(head, (rows, *head.shape[1:])), tail], axis=1)
        return mx.concatenate([mx.zeros((rows, prefix - 1)), _picked(logits, targets[:, prefix - 1:], temperature)],
                              axis=1)
    return _picked(model(inputs), targets, temperature)


def _plain_kv_cache(model) -> bool:
    """Whether every layer caches plain keys and values (what SharedPrefixCache stands in for);
    other models (sliding windows, recurrent layers) take the full pass."""
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    return all(type(c) is KVCache for c in make_prompt_cache(model))


def _picked(logits, targets, temperature: float):
    import mlx.core as mx

    logits = logits.astype(mx.float32)
    if temperature and temperature != 1.0:
        logits = logits / temperature
    picked = mx.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - mx.logsumexp(logits, axis=-1)


def grpo_loss(model, inputs, targets, mask, advantages, old_logprobs, ref_logprobs,
              norm: Normaliser, epsilon: float, epsilon_high: float, beta: float, temperature: float,
              prefix: int = 0):
    """(loss, metrics) for one micro-batch; `old_logprobs` None = detached current (one update per batch);
    `prefix`: see `token_logprobs` (a group's prompt length)."""
    import mlx.core as mx

    logp = token_logprobs(model, inputs, targets, temperature, prefix)
    old = mx.stop_gradient(logp) if old_logprobs is None else old_logprobs
    ratio = mx.exp(logp - old)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = mx.clip(ratio, 1 - epsilon, 1 + epsilon_high) * adv
    per_token = -mx.minimum(unclipped, clipped)
    kl = mx.zeros_like(logp)
    if beta:
        delta = ref_logprobs - logp
        kl = mx.exp(delta) - delta - 1
        per_token = per_token + beta * kl
    if norm.loss_type == "grpo":
        loss = ((per_token * mask).sum(axis=1) / mx.maximum(mask.sum(axis=1), 1)).sum() / norm.completions
    elif norm.loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (norm.completions * norm.max_tokens)
    else:  # dapo: token-level
        loss = (per_token * mask).sum() / max(norm.tokens, 1)
    is_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon_high) & (adv > 0))
    metrics = {"kl_sum": (kl * mask).sum(), "clipped_sum": (is_clipped * mask).sum(), "tokens": mask.sum()}
    return loss, metrics


def pack_group(prompt_ids: list[int], completions: list[list[int]], eos_id: int, finished: list[bool], pad_id: int = 0):
    """(inputs, targets, mask) for one group: prompt + sampled ids (+ EOS when the model stopped),
    right-padded. The mask covers completion targets only, so every log-prob has the full prompt as
    context; every row starts with the same prompt (what `token_logprobs(prefix=...)` relies on)."""
    import mlx.core as mx

    seqs = [prompt_ids + c + ([eos_id] if done else []) for c, done in zip(completions, finished)]
    start = len(prompt_ids)
    width = max(len(r) for r in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(seqs), width - 1), dtype=np.float32)
    for i, r in enumerate(seqs):
        ids[i, :len(r)] = r
        mask[i, start - 1:len(r) - 1] = 1.0
    return mx.array(ids[:, :-1]), mx.array(ids[:, 1:]), mx.array(mask)

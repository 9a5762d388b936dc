"""The GRPO loss and its gradient against an independent plain-NumPy implementation."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from workbench.train.grpo import Normaliser, group_advantages, grpo_loss, pack_group, token_logprobs  # noqa: E402


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_loss_and_grad(logits, targets, mask, adv, old, ref, loss_type, n_completions, n_tokens, max_tokens,
                     eps, eps_high, beta, temp):
    """Loss and d loss / d logits, written out by hand (float64)."""
    z = logits.astype(np.float64) / temp
    logsm = np_log_softmax(z)
    lp = np.take_along_axis(logsm, targets[..., None], axis=-1)[..., 0]
    old = lp if old is None else old
    r = np.exp(lp - old)
    a = adv[:, None]
    unclipped, clipped = r * a, np.clip(r, 1 - eps, 1 + eps_high) * a
    per = -np.minimum(unclipped, clipped)
    d_per = np.where(unclipped <= clipped, -r * a, 0.0)  # the clipped branch is flat in logp
    if beta:
        delta = ref - lp
        per = per + beta * (np.exp(delta) - delta - 1)
        d_per = d_per + beta * (1 - np.exp(delta))
    if loss_type == "grpo":
        weight = mask / mask.sum(axis=1, keepdims=True) / n_completions
    elif loss_type == "dr_grpo":
        weight = mask / (n_completions * max_tokens)
    else:
        weight = mask / n_tokens
    loss = (per * weight).sum()
    onehot = np.zeros_like(z)
    np.put_along_axis(onehot, targets[..., None], 1.0, axis=-1)
    grad = (d_per * weight)[..., None] * (onehot - np.exp(logsm)) / temp
    return loss, grad


class FixedLogits:
    """A "model" returning given logits, so MLX differentiates the loss with respect to them."""

    def __init__(self, logits):
        self.logits = logits

    def __call__(self, inputs):
        return self.logits


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("stored_old", [False, True])
def test_loss_and_gradient_match_numpy(tiny_model, loss_type, stored_old):
    from mlx_lm import load

    model, _ = load(str(tiny_model))
    rng = np.random.default_rng(0)
    prompt = [5, 60, 61, 62, 7]
    completions = [list(rng.integers(10, 200, size=n)) for n in (6, 3, 8, 1)]
    finished = [True, False, True, True]
    inputs, targets, mask = pack_group(prompt, completions, 2, finished)
    temp, eps, eps_high, beta = 0.7, 0.2, 0.28, 0.05
    rewards = np.array([1.0, 0.0, 0.5, 0.0])
    adv = group_advantages(rewards, scale=loss_type != "dr_grpo")
    logits = model(inputs)
    lp = np.array(token_logprobs(model, inputs, targets, temp))
    # Old policy log-probs off by up to +-0.5 so that some ratios leave the clip range.
    old = (lp + rng.uniform(-0.5, 0.5, size=lp.shape)).astype(np.float32) if stored_old else None
    ref = (lp + rng.uniform(-0.3, 0.3, size=lp.shape)).astype(np.float32)
    m = np.array(mask)
    norm = Normaliser(loss_type, completions=4, tokens=int(m.sum()), max_tokens=10)
    args = (inputs, targets, mask, mx.array(adv, dtype=mx.float32), None if old is None else mx.array(old),
            mx.array(ref), norm, eps, eps_high, beta, temp)

    # The loss of the real model equals the loss computed from its logits in NumPy...
    loss, metrics = grpo_loss(model, *args)
    want, want_grad = np_loss_and_grad(np.array(logits), np.array(targets), m, adv, old, ref, loss_type,
                                       4, int(m.sum()), 10, eps, eps_high, beta, temp)
    assert loss.item() == pytest.approx(want, rel=1e-4, abs=1e-6)
    # ...and so does its gradient with respect to the logits.
    grad = mx.grad(lambda z: grpo_loss(FixedLogits(z), *args)[0])(logits)
    np.testing.assert_allclose(np.array(grad), want_grad, rtol=2e-3, atol=1e-7)
    assert np.abs(want_grad).sum() > 0
    if stored_old:
        assert metrics["clipped_sum"].item() > 0  # the clip branch was exercised


def test_prompt_is_context_and_padding_is_masked():
    inputs, targets, mask = pack_group([1, 2, 3], [[4, 5], [6]], eos_id=9, finished=[True, False])
    assert np.array(inputs).tolist() == [[1, 2, 3, 4, 5], [1, 2, 3, 6, 0]]
    assert np.array(targets).tolist() == [[2, 3, 4, 5, 9], [2, 3, 6, 0, 0]]
    # Targets 4, 5 and EOS for the first (it stopped), only 6 for the second (cut at max_tokens).
    assert np.array(mask).tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 0, 0]]


def test_zero_spread_groups_give_zero_advantages_not_nan():
    for scale in (True, False):
        adv = group_advantages([1.0, 1.0, 1.0, 1.0], scale)
        assert np.all(adv == 0) and not np.any(np.isnan(adv))
    adv = group_advantages([1.0, 0.0, 0.0, 0.0], scale=True)
    assert adv.sum() == pytest.approx(0) and adv[0] > 0 > adv[1]
    assert np.std(group_advantages([3.0, 1.0], scale=True), ddof=1) == pytest.approx(1.0, rel=1e-3)


def test_shared_prompt_pass_gives_the_same_logprobs_and_gradients(tiny_model):
    """A group's prompt through the model once (`prefix`) equals the plain per-row pass, values and gradients."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm import load

    from workbench.train.checkpoint import apply_lora
    from workbench.train.config import LoraConfig

    model, _ = load(str(tiny_model))
    mx.random.seed(0)
    apply_lora(model, LoraConfig(rank=4))
    model.update(tree_map_random(model.trainable_parameters()))  # B != 0: the adapters change the output
    rng = np.random.default_rng(1)
    prompt = [5, 60, 61, 62, 7, 8, 9]
    completions = [list(rng.integers(10, 200, size=n)) for n in (6, 3, 8, 1)]
    inputs, targets, mask = pack_group(prompt, completions, 2, [True, False, True, True])
    adv = mx.array(group_advantages([1.0, 0.0, 0.5, 0.0], scale=True), dtype=mx.float32)
    norm = Normaliser("grpo", completions=4, tokens=int(np.array(mask).sum()), max_tokens=10)
    plain = token_logprobs(model, inputs, targets, 0.7)
    shared = token_logprobs(model, inputs, targets, 0.7, prefix=len(prompt))
    m = np.array(mask) > 0
    np.testing.assert_allclose(np.array(shared)[m], np.array(plain)[m], rtol=1e-4, atol=1e-5)

    def grads(prefix):
        loss_and_grad = nn.value_and_grad(model, lambda mdl: grpo_loss(mdl, inputs, targets, mask, adv, None, plain,
                                                                         norm, 0.2, 0.28, 0.05, 0.7, prefix)[0])
        return dict(tree_flatten(loss_and_grad(model)[1]))

    want, got = grads(0), grads(len(prompt))
    assert want.keys() == got.keys() and len(want) > 0
    for name in want:
        np.testing.assert_allclose(np.array(got[name]), np.array(want[name]), rtol=1e-3, atol=1e-6, err_msg=name)
    assert any(np.abs(np.array(g)).sum() > 0 for g in want.values())


def tree_map_random(params):
    from mlx.utils import tree_map

    return tree_map(lambda p: mx.random.normal(p.shape) * 0.05, params)

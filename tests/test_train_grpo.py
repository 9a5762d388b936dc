"""GRPO on tiny models: a 3-step run, resume equals an uninterrupted run, adapters load in mlx-lm."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")

from workbench.train.config import GRPOConfig  # noqa: E402
from workbench.train.trainer import train_grpo  # noqa: E402

TIMING = {"step_time", "tokens_per_second", "generate_time", "score_time"}


def length_scorer(calls=None):
    """A tiny local reward: completions whose length is even score 1 (spread within groups)."""
    def score(name, items):
        if calls is not None:
            calls.append((name, len(items)))
            assert all(example["think_in_prompt"] is True for _, example in items)  # the prompt opened <think>
        return [float(len(text) % 2 == 0) for text, _ in items]
    return score


@pytest.fixture
def suite(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(12)))
    return path


def config(model, suite, out, **extra):
    values = {"model": str(model), "suite": str(suite), "verifiers": {"math": 1.0, "format": 0.5}, "steps": 3,
              "group_size": 4, "prompts_per_step": 2, "max_tokens": 12, "temperature": 1.0, "out": str(out),
              "checkpoint_every": 1, "lora": {"rank": 4, "alpha": 8.0}, "learning_rate": 1e-2, "beta": 0.1}
    return GRPOConfig.from_dict({**values, **extra})


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_three_steps_write_metrics_samples_and_adapters(tiny_model, suite, tmp_path):
    calls = []
    run = train_grpo(config(tiny_model, suite, tmp_path / "run"), scorer=length_scorer(calls), log=lambda _: None)
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in ("reward", "reward_math", "reward_format", "accuracy", "kl", "clip_fraction", "completion_length",
                "thinking_share", "tokens_per_second", "step_time", "frac_reward_zero_std", "loss"):
        assert all(np.isfinite(r[key]) for r in rows), key
    assert rows[0]["kl"] == pytest.approx(0, abs=1e-6)  # LoRA B starts at zero: policy == reference
    assert rows[-1]["kl"] > 0  # the updates moved the policy
    # Each verifier ran once per completion: 2 verifiers x 3 steps, 8 completions each.
    assert sorted(calls) == sorted([("math", 8), ("format", 8)] * 3)
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {"prompt", "completion", "reward", "math"} <= set(samples[0])
    assert (run / "adapters.safetensors").exists() and (run / "checkpoint" / "optimizer.safetensors").exists()
    cfg = json.loads((run / "adapter_config.json").read_text())
    assert cfg["fine_tune_type"] == "lora" and cfg["lora_parameters"]["rank"] == 4


def test_adapters_load_in_mlx_lm_and_workbench(tiny_model, suite, tmp_path):
    from mlx_lm import load

    from workbench.engine.loader import load_model

    run = train_grpo(config(tiny_model, suite, tmp_path / "run", steps=2), scorer=length_scorer(), log=lambda _: None)
    base, _ = load(str(tiny_model))
    tuned, _ = load(str(tiny_model), adapter_path=str(run))
    ids = mx.array([[5, 6, 7, 8]])
    assert not np.allclose(np.array(base(ids)), np.array(tuned(ids)))  # the adapters changed something
    loaded = load_model(tiny_model, adapter=run)  # what `workbench run --adapter` does
    np.testing.assert_allclose(np.array(loaded.model(ids)), np.array(tuned(ids)), rtol=1e-5, atol=1e-5)


def test_resume_gives_the_same_next_step(tiny_model, suite, tmp_path):
    straight = train_grpo(config(tiny_model, suite, tmp_path / "a"), scorer=length_scorer(), log=lambda _: None)
    stopped = train_grpo(config(tiny_model, suite, tmp_path / "b", steps=2), scorer=length_scorer(), log=lambda _: None)
    resumed = train_grpo(config(tiny_model, suite, tmp_path / "b"), resume=True, scorer=length_scorer(),
                         log=lambda _: None)
    assert resumed == stopped
    a, b = metrics(straight)[2], metrics(resumed)[2]
    assert b["step"] == 3
    for key in set(a) - TIMING:
        assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), key
    samples_a = (straight / "samples.jsonl").read_text().splitlines()[-2:]
    samples_b = (resumed / "samples.jsonl").read_text().splitlines()[-2:]
    assert samples_a == samples_b  # the same completions were sampled


def test_resume_without_checkpoint_is_a_clear_error(tiny_model, suite, tmp_path):
    from workbench.errors import UserError

    with pytest.raises(UserError, match="no checkpoint"):
        train_grpo(config(tiny_model, suite, tmp_path / "empty"), resume=True, scorer=length_scorer(), log=lambda _: None)


def test_gradient_accumulation_equals_one_big_batch(tiny_model, suite, tmp_path):
    """One group per micro-batch (accumulated) and all groups at once give the same update."""
    from mlx.utils import tree_flatten

    runs = [train_grpo(config(tiny_model, suite, tmp_path / f"run{n}", steps=1, groups_per_micro_batch=n),
                       scorer=length_scorer(), log=lambda _: None) for n in (0, 1)]
    a, b = (dict(tree_flatten(mx.load(str(r / "adapters.safetensors")))) for r in runs)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(np.array(a[k]), np.array(b[k]), rtol=1e-4, atol=1e-6)
    assert metrics(runs[0])[0]["loss"] == pytest.approx(metrics(runs[1])[0]["loss"], rel=1e-4, abs=1e-7)


def test_dapo_skips_groups_with_equal_rewards(tiny_model, suite, tmp_path):
    constant = lambda name, items: [1.0] * len(items)  # noqa: E731 - every group has zero spread
    run = train_grpo(config(tiny_model, suite, tmp_path / "run", steps=1, loss_type="dapo"), scorer=constant,
                     log=lambda _: None)
    row = metrics(run)[0]
    assert row["frac_reward_zero_std"] == 1.0 and row["groups_used"] == 0 and row["loss"] == 0.0
    run = train_grpo(config(tiny_model, suite, tmp_path / "run2", steps=1), scorer=constant, log=lambda _: None)
    row = metrics(run)[0]
    assert row["frac_reward_zero_std"] == 1.0 and row["groups_used"] == 2 and np.isfinite(row["loss"])


def test_group_log_probs_match_a_full_forward_pass(tiny_model):
    """The KV-cached batched sampler and the loss see the same distribution (prompt as context)."""
    from mlx_lm import load

    from workbench.train.grpo import pack_group, token_logprobs
    from workbench.train.rollout import sample_group

    model, _ = load(str(tiny_model))
    mx.random.seed(3)
    prompt = [5, 70, 71, 72, 73, 7]
    group = sample_group(model, prompt, 4, 10, eos_ids=[2], temperature=0.8)
    assert len(group.completions) == 4 and len({tuple(c) for c in group.completions}) > 1
    inputs, targets, mask = pack_group(prompt, group.completions, 2, group.finished)
    lp = np.array(token_logprobs(model, inputs, targets, 0.8))
    for i, c in enumerate(group.completions):
        np.testing.assert_allclose(lp[i, len(prompt) - 1:len(prompt) - 1 + len(c)], group.sample_logprobs[i],
                                   rtol=1e-4, atol=1e-4)


def test_groups_decoded_together_draw_what_each_draws_alone(tiny_model):
    """Several prompts (different lengths, left-padded) in one decode batch: each group, with its
    seed, samples the same completions and log-probs as alone; log-probs match the loss's pass."""
    from mlx_lm import load

    from workbench.train.grpo import pack_group, token_logprobs
    from workbench.train.rollout import sample_groups

    model, _ = load(str(tiny_model))
    prompts = [[5, 70, 71, 72, 73, 7], [5, 80, 7], [5, 90, 91, 92, 93, 94, 95, 96, 7]]
    together = sample_groups(model, prompts, 4, 12, eos_ids=[2], temperature=0.9, seeds=[11, 12, 13])
    for prompt, seed, group in zip(prompts, [11, 12, 13], together):
        alone = sample_groups(model, [prompt], 4, 12, eos_ids=[2], temperature=0.9, seeds=[seed])[0]
        assert group.completions == alone.completions and group.finished == alone.finished
        np.testing.assert_allclose(np.concatenate(group.sample_logprobs), np.concatenate(alone.sample_logprobs),
                                   rtol=1e-4, atol=1e-5)
        inputs, targets, _ = pack_group(prompt, group.completions, 2, group.finished)
        lp = np.array(token_logprobs(model, inputs, targets, 0.9))
        for i, c in enumerate(group.completions):
            np.testing.assert_allclose(lp[i, len(prompt) - 1:len(prompt) - 1 + len(c)], group.sample_logprobs[i],
                                       rtol=1e-4, atol=1e-4)
    assert len({tuple(c) for g in together for c in g.completions}) > 4  # they did sample


def test_reference_is_the_base_model_with_adapters_off(tiny_model, tmp_path):
    from mlx.utils import tree_flatten, tree_map
    from mlx_lm import load

    from workbench.train.checkpoint import adapters_off, apply_lora
    from workbench.train.config import LoraConfig

    model, _ = load(str(tiny_model))
    ids = mx.array([[5, 6, 7, 8, 9]])
    base = np.array(model(ids))
    apply_lora(model, LoraConfig(rank=4))
    model.update(tree_map(lambda v: mx.ones_like(v) * 0.05, model.trainable_parameters()))  # a trained-looking LoRA
    assert not np.allclose(np.array(model(ids)), base)
    with adapters_off(model):
        np.testing.assert_allclose(np.array(model(ids)), base, rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.array(model(ids)), base)  # switched back on
    params = sum(v.size for _, v in tree_flatten(model.parameters()))
    base_params = sum(v.size for _, v in tree_flatten(load(str(tiny_model))[0].parameters()))
    lora_params = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    assert params == base_params + lora_params  # no second copy of the weights


def test_fuse_matches_the_adapted_model(tiny_model, suite, tmp_path):
    from mlx_lm import load

    from workbench.train.checkpoint import fuse_adapters

    run = train_grpo(config(tiny_model, suite, tmp_path / "run", steps=1), scorer=length_scorer(), log=lambda _: None)
    out = fuse_adapters(run, None, tmp_path / "fused")
    tuned, _ = load(str(tiny_model), adapter_path=str(run))
    fused, _ = load(str(out))
    ids = mx.array([[5, 6, 7, 8]])
    np.testing.assert_allclose(np.array(fused(ids)), np.array(tuned(ids)), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cli_grpo_with_real_verifiers_then_fuse_and_plot(tiny_model, suite, tmp_path, capsys):
    """`workbench train grpo|fuse|plot` (in-process), the verifier pool scoring real completions."""
    from workbench.cli import build_parser
    from workbench.commands import train
    from workbench.errors import UserError

    def workbench_train(*argv):
        return train.main(build_parser().parse_args(["train", *map(str, argv)]))

    run, fused = tmp_path / "run", tmp_path / "fused"
    assert workbench_train("grpo", "--model", tiny_model, "--suite", suite, "--steps", 2, "--group-size", 2,
                           "--prompts-per-step", 1, "--max-tokens", 8, "--verifiers", "math,format:0.5",
                           "--out", run) == 0
    assert "step 2/2" in capsys.readouterr().err
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and "reward_format" in rows[0]
    assert workbench_train("fuse", run, "--out", fused) == 0
    assert (fused / "config.json").exists() and list(fused.glob("*.safetensors"))
    assert workbench_train("plot", run, "--no-terminal") == 0 and (run / "curves.png").exists()
    with pytest.raises(UserError, match="nope.jsonl: no such suite"):
        workbench_train("grpo", "--model", tiny_model, "--suite", tmp_path / "nope.jsonl")


def test_format_reward_accepts_completions_that_start_inside_the_prompts_think():
    from workbench.train.rewards import score_completions
    from workbench.verify import run_verifier

    scorer = lambda name, items: [run_verifier(name, c, e).score or 0.0 for c, e in items]  # noqa: E731
    completion = "12+30=42\n</think>\nThe answer is \\boxed{42}."
    totals, per = score_completions([completion, "<think>\n" + completion], [{"answer": "42", "think_in_prompt": True}] * 2,
                                    {"math": 1.0, "format": 0.5}, scorer)
    assert per["format"] == [1.0, 0.0] and per["math"] == [1.0, 1.0] and totals == [1.5, 1.0]


def test_stop_file_checkpoints_and_stops_then_resume_finishes(tiny_model, suite, tmp_path):
    run = tmp_path / "run"
    cfg = config(tiny_model, suite, run, steps=3, checkpoint_every=100)

    def log(row):
        if isinstance(row, dict) and row["step"] == 1:
            (run / "STOP").touch()  # what the TUI's stop button does

    train_grpo(cfg, scorer=length_scorer(), log=log)
    assert [r["step"] for r in metrics(run)] == [1] and not (run / "STOP").exists()
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 1
    train_grpo(cfg, resume=True, scorer=length_scorer(), log=lambda _: None)
    assert [r["step"] for r in metrics(run)] == [1, 2, 3]


KILL_AFTER_LOGGING = """
import os, signal, sys
from workbench.train.config import GRPOConfig
from workbench.train.trainer import train_grpo
sys.path.insert(0, {tests!r})
from test_train_grpo import config, length_scorer

def log(row):  # the step is in metrics.jsonl and samples.jsonl, its checkpoint is not written yet
    if isinstance(row, dict) and row["step"] == 3:
        with open({run!r} + "/metrics.jsonl", "a") as f:
            f.write('{{"step": 4, "lo')  # and a torn line, as a kill mid-write leaves
        os.kill(os.getpid(), signal.SIGKILL)

train_grpo(config({model!r}, {suite!r}, {run!r}, steps=4, checkpoint_every=2), scorer=length_scorer(), log=log)
"""


def test_kill_9_between_logging_and_checkpoint_then_resume_logs_each_step_once(tiny_model, suite, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    code = KILL_AFTER_LOGGING.format(tests=os.path.dirname(__file__), run=str(run), model=str(tiny_model),
                                     suite=str(suite))
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((run / "checkpoint" / "state.json").read_text())["step"] == 2
    assert (run / "metrics.jsonl").read_text().count('"step": 3') == 1  # logged before the kill

    train_grpo(config(tiny_model, suite, run, steps=4, checkpoint_every=2), resume=True, scorer=length_scorer(),
               log=lambda _: None)
    assert [r["step"] for r in metrics(run)] == [1, 2, 3, 4]
    samples = [json.loads(line)["step"] for line in (run / "samples.jsonl").read_text().splitlines()]
    assert samples == [1, 1, 2, 2, 3, 3, 4, 4]


def test_cut_logs_keeps_what_it_cannot_read_and_rows_up_to_the_checkpoint(tmp_path):
    from workbench.train.checkpoint import cut_logs

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n{"step": 3}\n[1]\n{"step": 3, "x')
    (tmp_path / "samples.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    cut_logs(tmp_path, 2)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\nnot json\n{"step": 2}\n[1]\n'
    assert (tmp_path / "samples.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    cut_logs(tmp_path / "missing", 2)  # a run without logs yet

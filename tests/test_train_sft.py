"""SFT encoding and training, rejection sampling, configs and plots (tiny models)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.train.arithmetic import problem, sft_example, trace
from workbench.train.config import GRPOConfig, parse_verifiers, read_toml
from workbench.train.sft import read_chats


def test_arithmetic_traces_reach_the_true_answer():
    rng = random.Random(7)
    for _ in range(3000):
        p = problem(rng)
        thinking, answer = trace(p["a"], p["op"], p["b"])
        assert answer == f"The answer is \\boxed{{{p['answer']}}}."
        assert int(thinking.splitlines()[-1].split()[-1]) == abs(int(p["answer"]))  # the last result line
    lines = trace(4821, "+", 937)[0].splitlines()
    assert len({len(line) for line in lines[1:]}) == 1  # every column line has the same layout


def test_config_from_dict_toml_and_errors(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('loss_type = "dapo"\nverifiers = "math:1,format:0.25"\n[lora]\nrank = 16\n')
    config = GRPOConfig.from_dict(read_toml(path)).check()
    assert config.verifiers == {"math": 1.0, "format": 0.25} and config.lora.rank == 16
    assert config.clip_high == 0.28 and config.std_scaling
    assert not GRPOConfig(loss_type="dr_grpo").std_scaling
    with pytest.raises(UserError, match="unknown GRPOConfig setting"):
        GRPOConfig.from_dict({"stpes": 3})
    with pytest.raises(UserError, match="loss_type"):
        GRPOConfig(loss_type="ppo").check()
    path.write_text("steps = [")
    with pytest.raises(UserError, match="not valid TOML"):
        read_toml(path)
    assert parse_verifiers("math, format:0.5") == {"math": 1.0, "format": 0.5}


def test_read_chats_rejects_bad_lines_with_the_line_number(tmp_path):
    path = tmp_path / "chats.jsonl"
    good = json.dumps(sft_example(random.Random(0)))
    path.write_text(good + "\n{not json\n")
    with pytest.raises(UserError, match=r"chats.jsonl:2"):
        read_chats(path)
    path.write_text(good + "\n" + json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(UserError, match=r"chats.jsonl:2"):
        read_chats(path)
    path.write_text(good + "\n\n")
    assert len(read_chats(path)) == 1


def test_encode_chat_masks_the_prompt_and_keeps_one_think_tag(tiny_model):
    pytest.importorskip("mlx.core")
    from workbench.engine.loader import load_model
    from workbench.train.sft import encode_chat, make_batch

    tok = load_model(tiny_model).tokenizer
    row = {"messages": [{"role": "user", "content": "What is 2+2?"},
                        {"role": "assistant", "content": "<think>\n2+2=4\n</think>\n\\boxed{4}"}]}
    ids, start = encode_chat(tok, row)
    assert tok.decode(ids[:start]).endswith("<think>\n")
    assert tok.decode(ids[start:]) == "2+2=4\n</think>\n\\boxed{4}<|end|>"
    inputs, targets, mask = make_batch([(ids, start), (ids[:start + 2], start)])
    m = np.array(mask)
    assert m[0].sum() == len(ids) - start and m[1].sum() == 2
    assert np.array(targets)[0][start - 1] == ids[start]  # the first masked-in target is the reply's first token


def test_train_sft_lowers_the_loss(tiny_model, tmp_path):
    pytest.importorskip("mlx.core")
    from workbench.train.config import SFTConfig
    from workbench.train.sft import train_sft

    data = tmp_path / "chats.jsonl"
    rng = random.Random(1)
    data.write_text("".join(json.dumps(sft_example(rng, "+")) + "\n" for _ in range(4)))
    losses = []
    run = train_sft(SFTConfig(model=str(tiny_model), data=str(data), steps=8, batch_size=4, learning_rate=1e-2,
                              out=str(tmp_path / "run")), log=lambda row: losses.append(row["loss"]))
    assert losses[-1] < losses[0]
    assert (run / "adapters.safetensors").exists() and (run / "adapter_config.json").exists()


def test_rejection_keeps_only_verified_completions(taught_model, tmp_path):
    pytest.importorskip("mlx.core")
    from workbench.engine.thread import ThreadEngine
    from workbench.train.rejection import rejection_sample

    suite = tmp_path / "suite.jsonl"
    suite.write_text(json.dumps({"prompt": "What is 12+30?", "answer": "42"}) + "\n"
                     + json.dumps({"prompt": "What is 12+30?", "answer": "43"}) + "\n")
    out = tmp_path / "kept.jsonl"
    engine = ThreadEngine()
    try:
        kept, sampled = rejection_sample(engine, str(suite), ["math", "format"], k=3, limit=2, max_tokens=100,
                                         temperature=0.3, seed=0, out=out, model=str(taught_model))
    finally:
        engine.close()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sampled == 3 and kept == len(rows)  # the file's last 10% is held out: one prompt sampled
    for row in rows:
        assert row["messages"][1]["content"].startswith("<think>\n") and "\\boxed{42}" in row["messages"][1]["content"]
    assert kept >= 1  # the taught model answers 42 at low temperature
    read_chats(out)  # what it writes, `train sft` reads


def test_plot_writes_a_png_and_skips_a_torn_last_line(tmp_path, capsys):
    from workbench.train.plot import plot_run

    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": i, "reward": i / 10, "kl": 0.01 * i} for i in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 6, "rew')
    png = plot_run(run, ["reward", "kl", "missing"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reward" in capsys.readouterr().out
    (run / "metrics.jsonl").write_text("garbage\n" + json.dumps(rows[0]) + "\n")
    with pytest.raises(UserError, match="metrics.jsonl:1"):
        plot_run(run, ["reward"], terminal=False)

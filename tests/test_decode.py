"""Decoding options (issue #25): the KV cache quantized to kv_bits from kv_start tokens on, and speculative
decoding with a draft model sharing the tokenizer; both with the prompt cache and with steering."""

from __future__ import annotations

import json
import shutil

import pytest

from workbench.engine.events import Answer, ChatRequest, Decoding, Done, Failed, Message, Sampling, Steered, Think
from workbench.engine.thread import ThreadEngine

QUESTION = (Message("user", "What is 12+30?"),)
GREEDY = Sampling(temperature=0.0, max_tokens=120)


@pytest.fixture(scope="module")
def draft_model(tmp_path_factory):
    """A random 1-layer model with the same tokenizer as the taught model: it rarely guesses right."""
    from workbench.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("drafts") / "draft-random", seed=5, layers=1)


@pytest.fixture(scope="module")
def engine(taught_model):
    with ThreadEngine() as engine:
        engine.load(taught_model).collect()
        yield engine


def generate(engine, **fields):
    events = list(engine.generate(ChatRequest(QUESTION, fields.pop("sampling", GREEDY), **fields)))
    assert not [e for e in events if isinstance(e, Failed)], events
    think = "".join(e.text for e in events if isinstance(e, (Think, Steered)))
    answer = "".join(e.text for e in events if isinstance(e, Answer))
    return think, answer, events[-1].stats


def cache_offsets(engine) -> set[int]:
    """How many tokens each layer of the engine's prompt cache holds (with a draft: the model's and the draft's)."""
    return engine.call(lambda loaded: {c.offset for c in engine._cache.latest}).result(timeout=60)


def cache_types(engine) -> set[str]:
    return engine.call(lambda loaded: {type(c).__name__ for c in engine._cache.latest}).result(timeout=60)


# ---- KV-cache quantization --------------------------------------------------------------------

@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """An engine with a random model whose heads are 32 wide (MLX quantizes the cache in groups of 32 or 64)."""
    from workbench.engine.tiny import make_tiny_model

    folder = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-wide", seed=3, heads=2, kv_heads=2)
    with ThreadEngine() as engine:
        engine.load(folder).collect()
        engine.folder = folder
        yield engine

def test_kv_bits_quantize_the_cache_from_kv_start_and_are_reported(wide):
    engine = wide
    think, answer, stats = generate(engine, decoding=Decoding(kv_bits=8, kv_start=0))
    assert stats.generated_tokens == GREEDY.max_tokens
    assert (stats.kv_bits, stats.kv_start) == (8, 0) and "KV cache 8-bit" in stats.summary()
    assert cache_types(engine) == {"QuantizedKVCache"}
    generate(engine, decoding=Decoding(kv_bits=4, kv_start=10_000))  # never reached: the cache stays fp16
    assert cache_types(engine) == {"KVCache"}
    _, _, plain = generate(engine)
    assert plain.kv_bits == 0 and "KV cache" not in plain.summary()


def test_a_quantized_cache_is_trimmed_and_reused_and_other_bits_start_afresh(wide):
    engine = wide
    kv = Decoding(kv_bits=8, kv_start=0)
    think, answer, _ = generate(engine, decoding=kv)
    half = think[: len(think) // 2]
    _, again, stats = generate(engine, decoding=kv, continue_thinking=half)
    assert stats.prompt_cached_tokens > 0  # the quantized cache was trimmed to the common prefix and reused
    assert again == answer
    assert cache_types(engine) == {"QuantizedKVCache"}
    _, _, other = generate(engine, decoding=Decoding(kv_bits=4, kv_start=0), continue_thinking=half)
    assert other.prompt_cached_tokens == 0  # made at 8 bits: not this request's cache


def test_bad_kv_bits_fail_in_one_line(engine, taught_model, tmp_path):
    events = list(engine.generate(ChatRequest(QUESTION, GREEDY, decoding=Decoding(kv_bits=5))))
    assert isinstance(events[-1], Failed) and "kv_bits must be 4 or 8" in events[-1].message
    narrow = list(engine.generate(ChatRequest(QUESTION, GREEDY, decoding=Decoding(kv_bits=4))))
    assert isinstance(narrow[-1], Failed) and "too narrow to quantize" in narrow[-1].message
    folder = tmp_path / "bad-profile"
    shutil.copytree(taught_model, folder)
    (folder / "profile.toml").write_text("kv_bits = 3\n")
    from workbench.engine.profiles import load_profile
    from workbench.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"profile.toml: kv_bits must be 4 or 8"):
        load_profile(folder)


# ---- speculative decoding ---------------------------------------------------------------------

@pytest.mark.parametrize("which", ["random", "itself"])
def test_greedy_output_is_the_same_with_a_draft(engine, taught_model, draft_model, which):
    draft = str(draft_model if which == "random" else taught_model)
    think, answer, plain = generate(engine)
    d_think, d_answer, stats = generate(engine, decoding=Decoding(draft=draft, draft_tokens=3, draft_mode="on"))
    assert (d_think, d_answer) == (think, answer)
    assert stats.draft == (draft_model.name if which == "random" else taught_model.name)
    assert stats.draft_proposed > 0 and "accepted" in stats.summary()
    if which == "itself":  # the same model proposes what it would say: nearly all accepted
        assert stats.draft_acceptance > 0.9
    assert stats.generated_tokens == plain.generated_tokens


def test_a_budget_cut_and_a_wait_with_a_draft_give_the_greedy_output_without_it(engine, draft_model, taught_model):
    for draft in (draft_model, taught_model):
        on = Decoding(draft=str(draft), draft_tokens=4, draft_mode="on")
        for steer in ({"max_thinking_tokens": 9}, {"min_thinking_tokens": 60}):
            plain = generate(engine, **steer)
            drafted = generate(engine, decoding=on, **steer)
            assert drafted[:2] == plain[:2], (draft.name, steer)
            assert drafted[2].draft_proposed > 0
            assert len(cache_offsets(engine)) == 1  # the draft's layers hold what the model's hold
            assert drafted[2].thinking_cut == plain[2].thinking_cut
            assert drafted[2].thinking_extended == plain[2].thinking_extended


def test_a_continuation_reuses_the_joint_cache_of_model_and_draft(engine, taught_model):
    on = Decoding(draft=str(taught_model), draft_mode="on")
    think, answer, _ = generate(engine, decoding=on)
    _, again, stats = generate(engine, decoding=on, continue_thinking=think[: len(think) // 2])
    assert stats.prompt_cached_tokens > 0 and again == answer
    assert len(cache_offsets(engine)) == 1


def test_kv_bits_with_a_draft(wide):
    engine = wide
    both = Decoding(kv_bits=8, kv_start=20, draft=str(engine.folder), draft_mode="on")
    think, answer, stats = generate(engine, decoding=both)
    assert stats.kv_bits == 8 and stats.draft_accepted > 0 and stats.generated_tokens == GREEDY.max_tokens
    assert cache_types(engine) == {"QuantizedKVCache"}  # the model's layers and the draft's alike
    again = generate(engine, decoding=both, continue_thinking=think[:30])
    assert again[2].prompt_cached_tokens > 0


def test_auto_measures_with_and_without_the_draft_and_keeps_its_verdict(engine, taught_model, monkeypatch):
    from workbench.engine import decode

    monkeypatch.setattr(decode, "AUTO_TOKENS", 8)
    think, answer, _ = generate(engine)
    auto = Decoding(draft=str(taught_model), draft_mode="auto", draft_tokens=2)
    d_think, d_answer, stats = generate(engine, decoding=auto)
    assert (d_think, d_answer) == (think, answer)
    assert stats.draft_auto in ("kept", "dropped")
    _, _, later = generate(engine, decoding=auto)
    assert later.draft_auto == stats.draft_auto  # measured once per model, draft and draft size
    if later.draft_auto == "dropped":
        assert later.draft_proposed == 0


def test_auto_keeps_the_agreed_verdict_whatever_it_measured(engine, monkeypatch):
    """A cluster's ranks all keep rank 0's verdict (`Draft.agree`, a broadcast there): the verdict kept is
    the one agreed, asked once with what this process measured."""
    from workbench.engine import decode
    from workbench.engine.generate import decoder_for, stream_prompt
    from workbench.engine.prompt import build_prompt

    monkeypatch.setattr(decode, "AUTO_TOKENS", 8)

    def run(loaded, verdict: bool):
        draft = decode.Draft(loaded.model, loaded.model, "itself")
        asked = []
        draft.agree = lambda faster: asked.append(faster) or verdict
        decoder = decoder_for(loaded, Decoding(draft_mode="auto", draft_tokens=2), draft)
        prompt = build_prompt(loaded.tokenizer, QUESTION)
        *_, done = stream_prompt(loaded.model, loaded.tokenizer, prompt, GREEDY, decoder=decoder)
        return done.stats, asked

    for verdict in (True, False):
        stats, asked = engine.call(lambda loaded: run(loaded, verdict)).result(timeout=120)
        assert len(asked) == 1 and isinstance(asked[0], bool)
        assert stats.draft_auto == ("kept" if verdict else "dropped") and stats.generated_tokens > 16


def test_a_draft_with_another_vocabulary_is_refused_in_one_line(engine, draft_model, tmp_path):
    other = tmp_path / "other-vocab"
    shutil.copytree(draft_model, other)
    tok = json.loads((other / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    a, b = sorted(vocab)[-2:]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (other / "tokenizer.json").write_text(json.dumps(tok))
    events = list(engine.generate(ChatRequest(QUESTION, GREEDY, decoding=Decoding(draft=str(other)))))
    assert isinstance(events[-1], Failed)
    assert "does not share" in events[-1].message and "\n" not in events[-1].message
    missing = list(engine.generate(ChatRequest(QUESTION, GREEDY, decoding=Decoding(draft="no-such-model"))))
    assert isinstance(missing[-1], Failed) and missing[-1].message.startswith("draft model: ")
    _, answer, _ = generate(engine)  # the engine still answers
    assert "42" in answer


# ---- `workbench run`: flags, the stats line, the session --------------------------------------

def test_run_with_a_draft_and_kv_bits_prints_acceptance_and_records_the_settings(taught_model, workbench_home):
    import sqlite3
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "workbench", "run", "What is 12+30?", "--model", str(taught_model),
                          "--draft", str(taught_model), "--draft-mode", "on", "--draft-tokens", "4"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "\\boxed{42}" in out.stdout and f"draft {taught_model.name}: " in out.stdout and "accepted" in out.stdout
    db = workbench_home / "sessions.db"
    stats = json.loads(sqlite3.connect(db).execute("SELECT stats FROM turns WHERE stats IS NOT NULL").fetchone()[0])
    assert stats["draft"] == taught_model.name and stats["draft_tokens"] == 4 and stats["draft_accepted"] > 0
    assert stats["kv_bits"] == 0

    nano = subprocess.run([sys.executable, "-m", "workbench", "run", "What is 12+30?", "--kv-bits", "4", "--kv-start", "0",
                           "--no-save", "--json"], capture_output=True, text=True, timeout=180)
    assert nano.returncode == 0, nano.stderr
    done = json.loads(nano.stdout.splitlines()[-1])
    assert done["stats"]["kv_bits"] == 4 and done["stats"]["kv_start"] == 0 and done["stats"]["finish_reason"]


def test_run_refuses_decoding_options_for_a_served_model_in_one_line():
    import subprocess
    import sys

    for flags in (["--kv-bits", "8"], ["--draft", "r1-nano"], ["--kv-start", "100"], ["--draft-mode", "on"]):
        out = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--endpoint", "http://127.0.0.1:9", *flags],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert "decodes on its own machine" in out.stderr
    bad = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--draft-tokens", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--draft-tokens must be between 1 and 64" in bad.stderr


# ---- `workbench eval` ---------------------------------------------------------------------------

def test_eval_with_a_draft_or_a_context_keys_its_card_on_the_decoding(taught_model, workbench_home, tmp_path):
    import os

    from workbench.eval.runner import EvalOptions, run_eval

    model = workbench_home / "models" / "taught"
    shutil.copytree(taught_model, model)
    (tmp_path / "adds.jsonl").write_text(json.dumps({"question": "What is 12+30?", "answer": "42", "id": "q0"}) + "\n")
    spec = tmp_path / "adds.toml"
    spec.write_text('name = "adds"\nfile = "adds.jsonl"\nprompt_template = "{question}"\nverifier = "math"\n')
    quiet = open(os.devnull, "w")
    plain, _ = run_eval(EvalOptions(suite=str(spec), model=str(model)), progress_stream=quiet)
    drafted, _ = run_eval(EvalOptions(suite=str(spec), model=str(model),
                                      decoding=Decoding(draft=str(taught_model), draft_mode="on")), progress_stream=quiet)
    assert drafted["accuracy"] == plain["accuracy"] == 1.0
    assert "decoding" not in plain["sampling"]
    assert drafted["sampling"]["decoding"] == {"draft": str(taught_model), "draft_mode": "on"}
    assert drafted["items"][0]["samples"][0]["answer"] == plain["items"][0]["samples"][0]["answer"]
    # a context too short to answer in (test_context.py): scored so, and keyed on it
    short, _ = run_eval(EvalOptions(suite=str(spec), model=str(model), decoding=Decoding(context=40)),
                        progress_stream=quiet)
    assert short["accuracy"] == 0.0 and short["sampling"]["decoding"] == {"context": 40}

"""The context length (issue #25): the tokens a model may attend to, prompt and response. The user sets it
per request (`Decoding.context`: `run --context`, the app's settings) or per model (profile.toml); by
default it is the model's own (config.json's max_position_embeddings). A prompt longer than it fails in one
line; the response stops where it is full (finish reason "length")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from workbench.engine.events import ChatRequest, Decoding, Done, Failed, Message, Sampling
from workbench.engine.profiles import ContextExceeded, completion_room, decoding_problem, model_context
from workbench.engine.thread import ThreadEngine

QUESTION = (Message("user", "What is 12+30?"),)
GREEDY = Sampling(temperature=0.0, max_tokens=120)


def test_the_room_a_context_leaves_after_the_prompt():
    assert completion_room(100, None, 150) == 50  # no max_tokens: all of the rest
    assert completion_room(100, 20, 150) == 20
    assert completion_room(100, 80, 150) == 50  # capped to what is left
    assert completion_room(149, 80, 150) == 1
    for prompt in (150, 151, 10_000):
        with pytest.raises(ContextExceeded, match=f"the prompt is {prompt:,} tokens.*context of 150 tokens.*--context"):
            completion_room(prompt, 80, 150)
    assert decoding_problem(Decoding(context=-1)) == "context must be a token count (0: the model's own), not -1"
    assert decoding_problem(Decoding(context=0)) is None and decoding_problem(Decoding(context=8192)) is None


def test_the_models_own_context_comes_from_its_config():
    class Tokenizer:
        model_max_length = 2048

    assert model_context({"max_position_embeddings": 4096}, Tokenizer()) == 4096
    assert model_context({"text_config": {"max_position_embeddings": 8192}}) == 8192
    assert model_context({}, Tokenizer()) == 2048
    assert model_context({"max_position_embeddings": "big"}) is None  # what it cannot read: no limit


@pytest.fixture(scope="module")
def engine(taught_model):
    with ThreadEngine() as engine:
        engine.load(taught_model).collect()
        yield engine


def events_of(engine, **fields) -> list:
    return list(engine.generate(ChatRequest(QUESTION, fields.pop("sampling", GREEDY), **fields)))


def test_max_tokens_are_capped_to_what_the_context_leaves(engine, taught_model):
    assert engine.info.context == 4096  # the tiny model's max_position_embeddings
    plain = events_of(engine)[-1].stats
    assert plain.context == 4096 and plain.finish_reason == "stop"
    context = plain.prompt_tokens + 7
    capped = events_of(engine, decoding=Decoding(context=context))[-1]
    assert isinstance(capped, Done), capped
    stats = capped.stats
    assert stats.context == context and stats.finish_reason == "length"
    assert stats.prompt_tokens + stats.generated_tokens + stats.inserted_tokens == context
    assert f"the {context:,}-token context is full" in stats.summary()
    # a thinking budget's text (97 tokens here) counts against the context too: no room is left to answer
    cut = events_of(engine, decoding=Decoding(context=context + 40), max_thinking_tokens=3)[-1].stats
    assert cut.thinking_cut == "budget" and cut.inserted_tokens > 40
    assert cut.answer_tokens == 0 and cut.finish_reason == "length"


def test_a_prompt_longer_than_the_context_fails_in_one_line(engine):
    plain = events_of(engine)[-1].stats
    for context in (plain.prompt_tokens, 5):
        events = events_of(engine, decoding=Decoding(context=context))
        assert len(events) == 1 and isinstance(events[0], Failed), events
        message = events[0].message
        assert "\n" not in message and f"context of {context:,} tokens" in message
        assert f"the prompt is {plain.prompt_tokens:,} tokens" in message
    above = events_of(engine, decoding=Decoding(context=10_000))
    assert isinstance(above[-1], Failed) and "more than tiny-taught's own context of 4,096 tokens" in above[-1].message
    assert isinstance(events_of(engine)[-1], Done)  # the engine goes on


def test_the_profile_sets_the_context_and_a_request_overrides_it(taught_model, tmp_path):
    folder = tmp_path / "short"
    shutil.copytree(taught_model, folder)
    (folder / "profile.toml").write_text("temperature = 0.0\nmax_tokens = 200\ncontext = 40\n")
    with ThreadEngine() as engine:
        engine.load(folder).collect()
        assert engine.info.profile["context"] == 40
        stats = events_of(engine)[-1].stats
        assert stats.context == 40 and stats.finish_reason == "length"
        assert stats.prompt_tokens + stats.generated_tokens + stats.inserted_tokens == 40
        assert events_of(engine, decoding=Decoding(context=0))[-1].stats.context == 4096  # 0: the model's own
    (folder / "profile.toml").write_text("context = -5\n")
    from workbench.engine.profiles import load_profile
    from workbench.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"profile.toml: context must be a token count"):
        load_profile(folder)


def test_run_context_caps_the_response_refuses_a_longer_prompt_and_is_recorded(taught_model, workbench_home):
    import sqlite3

    base = [sys.executable, "-m", "workbench", "run", "What is 12+30?", "--model", str(taught_model)]
    short = subprocess.run([*base, "--context", "10"], capture_output=True, text=True, timeout=180)
    assert short.returncode != 0 and short.stderr.count("\n") == 1, short.stderr
    assert "workbench: error: " in short.stderr and "context of 10 tokens" in short.stderr
    assert "Traceback" not in short.stderr

    capped = subprocess.run([*base, "--context", "60", "--json"], capture_output=True, text=True, timeout=180)
    assert capped.returncode == 0, capped.stderr
    stats = json.loads(capped.stdout.splitlines()[-1])["stats"]
    assert stats["context"] == 60 and stats["finish_reason"] == "length"
    assert stats["prompt_tokens"] + stats["thinking_tokens"] + stats["answer_tokens"] == 60
    db = workbench_home / "sessions.db"
    rows = sqlite3.connect(db).execute("SELECT stats FROM turns WHERE stats IS NOT NULL")
    saved = [json.loads(row[0]) for row in rows]
    assert [s["context"] for s in saved if s.get("finish_reason") == "length"] == [60]


def test_context_flags_out_of_range_or_for_a_served_model_are_one_line():
    bad = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--context", "-3"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--context must be a token count" in bad.stderr
    remote = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--endpoint", "http://127.0.0.1:9",
                             "--context", "4096"], capture_output=True, text=True, timeout=60)
    assert remote.returncode == 2 and remote.stderr.count("\n") == 1, remote.stderr
    assert "decodes on its own machine" in remote.stderr and "--context" in remote.stderr


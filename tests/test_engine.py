"""The engine thread: load, stream Think/Answer/Done, stats, cancel, and MLX staying on one thread."""

import threading

import pytest

from workbench.engine.events import Answer, ChatRequest, Done, Failed, Loaded, Loading, Message, Sampling, Think
from workbench.engine.thread import ThreadEngine

GREEDY = Sampling(temperature=0.0, max_tokens=200)


@pytest.fixture(scope="module")
def engine(taught_model):
    e = ThreadEngine()
    events = list(e.load(taught_model))
    assert isinstance(events[0], Loading) and isinstance(events[-1], Loaded)
    yield e
    e.close()


def test_streams_thinking_then_answer_with_stats(engine):
    events = list(engine.generate(ChatRequest.single("What is 12+30?", GREEDY)))
    kinds = [type(e) for e in events]
    assert kinds[-1] is Done and Failed not in kinds
    first_answer = kinds.index(Answer)
    assert Think in kinds[:first_answer] and Think not in kinds[first_answer:]
    thinking = "".join(e.text for e in events if isinstance(e, Think))
    answer = "".join(e.text for e in events if isinstance(e, Answer))
    assert "12+30" in thinking and "</think>" not in thinking
    assert answer == "The answer is \\boxed{42}."
    stats = events[-1].stats
    assert stats.finish_reason == "stop" and stats.thinking_closed
    assert stats.answer_tokens == len(answer.encode())  # byte-level tokenizer: one token per byte
    assert stats.thinking_tokens >= len(thinking.encode())
    assert stats.prompt_tokens > 0 and stats.time_to_first_token > 0 and stats.thinking_time > 0
    assert sum(e.tokens for e in events if isinstance(e, (Think, Answer))) <= stats.generated_tokens


def test_max_tokens_cuts_thinking(engine):
    events = list(engine.generate(ChatRequest.single("What is 12+30?", Sampling(temperature=0.0, max_tokens=5))))
    stats = events[-1].stats
    assert stats.finish_reason == "length" and not stats.thinking_closed
    assert stats.generated_tokens == 5 and stats.answer_tokens == 0


def test_stop_is_checked_before_every_token(engine):
    from workbench.engine.generate import stream_reasoning

    calls = []

    def stop():  # asks to stop when consulted for the 4th token
        calls.append(1)
        return "cancelled" if len(calls) == 4 else None

    request = ChatRequest.single("What is 12+30?", GREEDY)
    events = engine.call(lambda loaded: list(stream_reasoning(loaded, request, stop=stop))).result(timeout=60)
    assert events[-1].stats.finish_reason == "cancelled"
    assert events[-1].stats.generated_tokens == 3  # not one token more


def test_cancel_from_the_caller_ends_an_endless_generation(tiny_model, tmp_path):
    import json
    import shutil

    endless = tmp_path / "endless"
    shutil.copytree(tiny_model, endless)
    config = json.loads((endless / "config.json").read_text())
    config["eos_token_id"] = []  # nothing ends it but the budget
    (endless / "config.json").write_text(json.dumps(config))
    e = ThreadEngine()
    try:
        e.load(endless).collect()
        job = e.generate(ChatRequest.single("hi", Sampling(temperature=0.0, max_tokens=100_000)))
        for event in job:
            if isinstance(event, (Think, Answer)):
                job.cancel()
        assert isinstance(event, Done) and event.stats.finish_reason == "cancelled"
        assert event.stats.generated_tokens < 100_000
    finally:
        e.close()


def test_cancel_before_start(engine):
    job = engine.generate(ChatRequest.single("x", GREEDY))
    job.cancel()
    *_, last = list(job)
    assert isinstance(last, Done) and last.stats.finish_reason == "cancelled"


def test_multi_turn_history_is_accepted(engine):
    request = ChatRequest((Message("user", "What is 12+30?"), Message("assistant", "42", thinking="long"),
                           Message("user", "What is 12+30?")), GREEDY)
    *_, last = list(engine.generate(request))
    assert isinstance(last, Done)


def test_mlx_runs_on_the_engine_thread_only(engine):
    names = engine.call(lambda loaded: threading.current_thread().name).result(timeout=30)
    assert names == "mlx-engine"
    tokens = engine.call(lambda loaded: loaded.tokenizer.encode("abc")).result(timeout=30)
    assert len(tokens) == 3


def test_the_model_info_says_which_device_mlx_computes_on(engine):
    import mlx.core as mx

    actual = engine.call(lambda loaded: mx.default_device().type).result(timeout=30)
    assert engine.info.device == {mx.DeviceType.cpu: "cpu", mx.DeviceType.gpu: "gpu"}[actual]


def test_generate_without_a_model_fails_cleanly():
    e = ThreadEngine()
    try:
        *_, last = list(e.generate(ChatRequest.single("hi")))
        assert isinstance(last, Failed) and last.message == "no model loaded"
        *_, last = list(e.load("/nonexistent/model"))
        assert isinstance(last, Failed) and "no model named" in last.message
    finally:
        e.close()


def test_engine_survives_a_failing_call(engine):
    with pytest.raises(ZeroDivisionError):
        engine.call(lambda loaded: 1 / 0).result(timeout=30)
    *_, last = list(engine.generate(ChatRequest.single("What is 12+30?", Sampling(temperature=0, max_tokens=3))))
    assert isinstance(last, Done)


def test_get_many_gathers_a_window_of_events_and_returns_at_once_on_the_last_one():
    """How the app reads a stream: one wake per frame, not per token; the end is never held back."""
    from workbench.engine.job import Job

    job = Job()
    job.put(Think("a", 1))
    later = threading.Timer(0.05, job.put, args=(Answer("b", 1),))
    later.start()
    assert job.get_many(1.0) == [Think("a", 1), Answer("b", 1)]  # the later one came within the window
    got = []
    reader = threading.Thread(target=lambda: got.extend(job.get_many(60.0)), daemon=True)
    reader.start()
    job.put(Answer("c", 1))
    job.put(Failed("boom"))
    reader.join(10)  # a terminal event ends the window at once, not after 60 s
    assert got == [Answer("c", 1), Failed("boom")]

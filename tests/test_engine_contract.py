"""One contract, every engine: the in-process thread, the child process, a remote endpoint (our server
over a ThreadEngine) and the scripted engine all behave as `workbench.engine.protocol` says."""

from __future__ import annotations

import threading

import pytest

from workbench.engine.events import (TERMINAL, Answer, ChatRequest, Done, Failed, Loaded, Loading, Message, Sampling,
                                     Steered, Think)
from workbench.engine.protocol import Capabilities, Engine, Job
from workbench.engine.scripted import Script, ScriptedEngine, script_from_text

QUESTION = "What is 12+30?"
LOOPING = "Loop?"
LOOP_LINE = "so we add it again here.\n\n"  # a paragraph: its third copy is a loop (inspect/loops.py)
GREEDY = Sampling(temperature=0.0, max_tokens=200)


@pytest.fixture(scope="module")
def looping_model(tmp_path_factory):
    """Taught to think the same sentence over and over (and to answer 12+30 as the taught model does)."""
    from conftest import WORKED
    from workbench.engine.tiny import make_tiny_model, teach

    folder = make_tiny_model(tmp_path_factory.mktemp("models") / "looping", seed=1)
    teach(folder, [(QUESTION, WORKED.format(a=12, b=30, c=42)), (LOOPING, LOOP_LINE * 6 + "</think>done")], steps=150)
    (folder / "profile.toml").write_text("temperature = 0.0\nmax_tokens = 200\n")
    return folder


class Served:
    """RemoteEngine against our OpenAI-compatible server answering with a ThreadEngine."""

    def __init__(self, folder) -> None:
        from workbench.distributed.server import ChatServer
        from workbench.engine.remote import RemoteEngine
        from workbench.engine.thread import ThreadEngine

        self.backend = ThreadEngine()
        *_, loaded = self.backend.load(folder).collect()
        assert isinstance(loaded, Loaded)
        self.server = ChatServer(("127.0.0.1", 0), self.backend.generate, loaded.info.name, steers=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.engine = RemoteEngine(f"http://127.0.0.1:{self.server.server_address[1]}")

    def close(self) -> None:
        self.engine.close()
        self.server.shutdown()
        self.backend.close()


def scripted() -> ScriptedEngine:
    loop = Script([Think(LOOP_LINE, 1) for _ in range(200)] + [Answer("done", 1)])
    answer = script_from_text("12+30: ones first, then tens. 12+30=42.", "The answer is \\boxed{42}.", chunk=4)
    long = Script([Think("step ", 1) for _ in range(5000)], hold=threading.Event())

    class Contracted(ScriptedEngine):
        def generate(self, request):  # picks its script by the question, as a model would
            text = request.messages[-1].content
            self.scripts = [loop if text == LOOPING else long if text == "long" else answer]
            self.requests.clear()
            return super().generate(request)

    return Contracted(rate=2000)


KINDS = ["thread", "process", "remote", "cluster", "scripted"]


class TwoRanks:
    """RemoteEngine against `workbench cluster serve --local-ranks 2`: our cluster, as a client sees it."""

    def __init__(self, folder, home) -> None:
        from test_distributed_cluster import Cluster

        from workbench.engine.remote import RemoteEngine

        with pytest.MonkeyPatch.context() as patch:  # Cluster keeps its log beside $WORKBENCH_HOME
            patch.setenv("WORKBENCH_HOME", str(home))
            self.cluster = Cluster(folder, "--deadline", "60")  # generous: CI shares 2 cores
        self.engine = RemoteEngine(self.cluster.url)

    def close(self) -> None:
        self.engine.close()
        self.cluster.stop()


@pytest.fixture(scope="module", params=KINDS)
def contracted(request, looping_model, tmp_path_factory):
    """(engine, model to load, a model name that cannot load) for each implementation."""
    kind = request.param
    if kind == "thread":
        from workbench.engine.thread import ThreadEngine

        engine, closer, model = ThreadEngine(), None, looping_model
    elif kind == "process":
        from workbench.engine.process import ProcessEngine

        engine, closer, model = ProcessEngine(), None, looping_model
    elif kind == "remote":
        served = Served(looping_model)
        engine, closer, model = served.engine, served, None
    elif kind == "cluster":
        served = TwoRanks(looping_model, tmp_path_factory.mktemp("cluster") / "home")
        engine, closer, model = served.engine, served, None
    else:
        engine, closer, model = scripted(), None, None
    yield kind, engine, model
    engine.close()
    if closer is not None:
        closer.close()


def long_request(kind: str) -> ChatRequest:
    """A request that runs for a while: a held script on the scripted engine; on a model, the looping
    thinking (~160 tokens), kept going by a minimum (each `</think>` becomes "Wait", until the model ends)."""
    if kind == "scripted":
        return ChatRequest((Message("user", "long"),), Sampling(temperature=0.0, max_tokens=2000))
    return ChatRequest((Message("user", LOOPING),), Sampling(temperature=0.0, max_tokens=2000), min_thinking_tokens=2000)


def test_it_is_an_engine_with_declared_capabilities(contracted):
    kind, engine, model = contracted
    assert isinstance(engine, Engine)
    assert isinstance(engine.capabilities, Capabilities)
    assert engine.capabilities.call == (kind == "thread")
    assert engine.capabilities.cluster == (kind in ("remote", "cluster"))
    engine.load(model).collect()  # a remote engine knows once it has asked the server
    assert engine.capabilities.steer  # every engine steers the thinking (a cluster's ranks all alike)


def test_load_says_loading_then_loaded_with_the_info_it_keeps(contracted):
    kind, engine, model = contracted
    job = engine.load(model)
    assert isinstance(job, Job)
    events = list(job)
    assert isinstance(events[0], Loading) and isinstance(events[-1], Loaded)
    assert all(not isinstance(e, TERMINAL) for e in events[:-1]) and job.finished.is_set()
    assert engine.info == events[-1].info and engine.info.name


def test_a_generation_streams_thinking_then_the_answer_and_ends_with_stats(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    thinking, answer, done = engine.generate(ChatRequest.single(QUESTION, GREEDY)).collect()
    assert isinstance(done, Done), done
    assert "12+30" in thinking and "</think>" not in thinking + answer
    assert answer == "The answer is \\boxed{42}."
    assert done.stats.finish_reason == "stop" and done.stats.thinking_closed
    assert done.stats.thinking_tokens > 0 and done.stats.answer_tokens > 0


def test_get_many_hands_out_every_event_in_order_and_the_terminal_one_last(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    job = engine.generate(ChatRequest.single(QUESTION, GREEDY))
    events = []
    while not events or not isinstance(events[-1], TERMINAL):
        batch = job.get_many(0.01)
        assert batch and all(not isinstance(e, TERMINAL) for e in batch[:-1])
        events += batch
    assert isinstance(events[-1], Done)
    assert "".join(e.text for e in events if isinstance(e, Answer)) == "The answer is \\boxed{42}."


def test_cancel_ends_a_running_generation_with_done_cancelled(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    for _ in range(5):  # a fast model may end (~160 tokens) before a remote engine's hang-up reaches its server
        job = engine.generate(long_request(kind))
        first = job.get(timeout=60)
        assert isinstance(first, (Think, Answer))
        job.cancel()
        *_, last = job
        if last.stats.finish_reason == "cancelled":
            break
    assert isinstance(last, Done) and last.stats.finish_reason == "cancelled"
    assert last.stats.generated_tokens < 2000 and job.stop_reason() == "cancelled"


def test_a_request_to_stop_on_loops_ends_a_looping_generation(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    request = ChatRequest((Message("user", LOOPING),), Sampling(temperature=0.0, max_tokens=2000), stop_on_loop=True)
    thinking, answer, done = engine.generate(request).collect()
    assert isinstance(done, Done), done
    assert done.stats.finish_reason == "loop" and answer == ""
    assert 3 <= thinking.count(LOOP_LINE.strip()) < 6  # stopped once it repeated, not at its end
    _, _, plain = engine.generate(ChatRequest((Message("user", LOOPING),), GREEDY)).collect()
    assert plain.stats.finish_reason != "loop"  # only when asked


def test_memory_is_a_figure_in_gb_or_none(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    engine.generate(ChatRequest.single(QUESTION, GREEDY)).collect()
    memory = engine.memory_gb()
    if kind in ("thread", "process"):
        assert 0.01 < memory < 100  # a real process's peak, in GB
    else:
        assert memory is None  # not known to this side


def test_optional_capabilities_work_where_declared(contracted):
    kind, engine, model = contracted
    engine.load(model).collect()
    if engine.capabilities.call:
        assert engine.call(lambda loaded: loaded.tokenizer.encode("ab")).result(timeout=30)
    if engine.capabilities.cluster:  # our server: no ranks behind the plain one, two behind the cluster
        described = engine.cluster()
        assert described["model"] == engine.info.name
        assert [r["rank"] for r in described["ranks"]] == ([0, 1] if kind == "cluster" else [])


def test_a_model_that_cannot_load_fails_in_one_line_and_the_engine_keeps_working(contracted, tmp_path):
    kind, engine, model = contracted
    if kind == "scripted":
        broken = ScriptedEngine(load_error="no such model")
        failed = broken.load("nope").collect()[-1]
    else:
        failed = engine.load("nope" if kind in ("remote", "cluster") else tmp_path / "nope").collect()[-1]
    assert isinstance(failed, Failed) and failed.message and "\n" not in failed.message
    engine.load(model).collect()
    assert isinstance(engine.generate(ChatRequest.single(QUESTION, GREEDY)).collect()[-1], Done)


def steering(contracted):
    kind, engine, model = contracted
    if not engine.capabilities.steer:
        pytest.skip(f"the {kind} engine does not steer")
    engine.load(model).collect()
    return engine


def cut_events(job) -> tuple[list, Done]:
    events = list(job)
    assert isinstance(events[-1], Done), events[-1]
    return events[:-1], events[-1]


def test_a_thinking_budget_cuts_the_thinking_marks_the_cut_and_the_answer_follows(contracted):
    engine = steering(contracted)
    events, done = cut_events(engine.generate(
        ChatRequest((Message("user", QUESTION),), GREEDY, max_thinking_tokens=5)))
    steered = [i for i, e in enumerate(events) if isinstance(e, Steered)]
    assert len(steered) == 1 and events[steered[0]].kind == "budget" and "limited time" in events[steered[0]].text
    assert all(isinstance(e, Think) for e in events[:steered[0]])
    assert any(isinstance(e, Answer) for e in events[steered[0]:]) and not any(isinstance(e, Think) for e in events[steered[0]:])
    assert done.stats.thinking_tokens == 5 and done.stats.thinking_cut == "budget" and done.stats.thinking_closed


def test_answer_now_while_thinking_streams_closes_the_thinking_and_the_answer_streams(contracted):
    engine = steering(contracted)
    for _ in range(5):  # a remote response may end before the request reaches its server (a loaded machine)
        job = engine.generate(ChatRequest((Message("user", LOOPING),), Sampling(temperature=0.0, max_tokens=400)))
        first = job.get(timeout=60)
        assert isinstance(first, Think)
        job.answer_now()
        events, done = cut_events(job)
        kinds = [e.kind for e in events if isinstance(e, Steered)]
        if kinds:
            break
    assert kinds == ["answer_now"] and isinstance(events[-1], Answer)
    assert done.stats.thinking_cut == "answer_now" and done.stats.finish_reason != "cancelled"
    assert "".join(e.text for e in [first, *events] if isinstance(e, Think)).count(LOOP_LINE.strip()) < 6


def test_loop_rescue_answers_now_instead_of_stopping(contracted):
    engine = steering(contracted)
    request = ChatRequest((Message("user", LOOPING),), Sampling(temperature=0.0, max_tokens=400), answer_on_loop=True)
    events, done = cut_events(engine.generate(request))
    assert [e.kind for e in events if isinstance(e, Steered)] == ["loop"] and isinstance(events[-1], Answer)
    assert done.stats.thinking_cut == "loop" and done.stats.finish_reason != "loop"
    assert 3 <= "".join(e.text for e in events if isinstance(e, Think)).count(LOOP_LINE.strip()) < 6

"""The engine in its own process: same events as the in-process engine, cancel, a dead child, load errors,
closing, and the app command opening on it."""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from workbench.engine.events import (
    Answer, ChatRequest, Done, Failed, Loaded, Loading, Message, Sampling, Stats, Think, merge_deltas,
)
from workbench.engine.process import ProcessEngine
from workbench.engine.thread import ThreadEngine

GREEDY = Sampling(temperature=0.0, max_tokens=200)
QUESTION = "What is 12+30?"


def read(job, timeout: float = 60.0) -> list:
    """All of a job's events; a job that hangs fails the test instead of blocking it."""
    events = []
    while not events or not isinstance(events[-1], (Done, Failed, Loaded)):
        try:
            events.append(job.get(timeout=timeout))
        except queue.Empty:
            pytest.fail(f"no event for {timeout} s after {events[-3:]}")
    return events


def without_times(events: list) -> list:
    """Events with the measured times (which differ run to run) zeroed."""
    return [replace(e, stats=replace(e.stats, time_to_first_token=0, thinking_time=0, answer_time=0,
                                     total_time=0, peak_memory_gb=0)) if isinstance(e, Done) else e
            for e in events]


@pytest.fixture(scope="module")
def engine(taught_model):
    e = ProcessEngine()
    yield e
    e.close()


@pytest.fixture(scope="module")
def endless_model(tiny_model, tmp_path_factory):
    """The random tiny model with an end-of-sequence token it can never produce: it runs to max_tokens."""
    folder = tmp_path_factory.mktemp("models") / "endless"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    config["eos_token_id"] = config["vocab_size"] + 1
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_same_events_as_the_in_process_engine(engine, taught_model):
    local = ThreadEngine()
    try:
        local_load = read(local.load(taught_model))
        child_load = read(engine.load(taught_model))
        assert child_load == local_load and isinstance(child_load[-1], Loaded)
        assert engine.info == local.info == child_load[-1].info  # ModelInfo, profile dict and all
        for request in (ChatRequest.single(QUESTION, GREEDY),
                        ChatRequest((Message("user", QUESTION), Message("assistant", "42", thinking="long"),
                                     Message("user", QUESTION)), GREEDY),
                        ChatRequest.single(QUESTION, Sampling(temperature=0.0, max_tokens=5))):
            mine, theirs = read(engine.generate(request)), read(local.generate(request))
            assert without_times(mine) == without_times(theirs)  # every delta, in order, and the counts
        answer = "".join(e.text for e in mine if isinstance(e, Answer))
        assert mine[-1].stats.finish_reason == "length" and answer == ""
        first = read(engine.generate(ChatRequest.single(QUESTION, GREEDY)))
        assert "".join(e.text for e in first if isinstance(e, Answer)) == "The answer is \\boxed{42}."
        stats = first[-1].stats
        assert stats.total_time > 0 and stats.time_to_first_token > 0 and stats.thinking_closed
    finally:
        local.close()


def test_memory_is_the_childs_where_the_model_lives(engine, taught_model):
    read(engine.load(taught_model))
    read(engine.generate(ChatRequest.single(QUESTION, GREEDY)))
    if not os.path.exists(f"/proc/{engine._proc.pid}/status"):
        pytest.skip("reads the child's peak memory from /proc")
    with open(f"/proc/{engine._proc.pid}/status") as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    # the child's peak (GB) as its last message gave it: at most what /proc says now, and close to it
    assert 0.9 * peak_kib * 1024 / 1e9 <= engine.memory_gb() <= peak_kib * 1024 / 1e9


def test_cancel_mid_stream_and_before_start(engine, endless_model):
    assert isinstance(read(engine.load(endless_model))[-1], Loaded)
    max_tokens = 5000
    job = engine.generate(ChatRequest.single("hi", Sampling(temperature=0.0, max_tokens=max_tokens)))
    seen = 0
    for event in job:
        if isinstance(event, (Think, Answer)):
            seen += event.tokens
            if seen >= 3:
                job.cancel()
    assert isinstance(event, Done) and event.stats.finish_reason == "cancelled"
    # The child stops at the next token after the message arrives; only tokens in flight get through.
    assert seen <= event.stats.generated_tokens < max_tokens // 10

    job = engine.generate(ChatRequest.single("hi", Sampling(temperature=0.0, max_tokens=max_tokens)))
    job.cancel()
    last = read(job)[-1]
    assert isinstance(last, Done) and last.stats.finish_reason == "cancelled"
    assert last.stats.generated_tokens < max_tokens // 10
    # and the engine goes on serving
    assert isinstance(read(engine.generate(ChatRequest.single("hi", Sampling(max_tokens=4))))[-1], Done)


def test_child_killed_mid_stream_fails_every_open_job_then_load_restarts_it(endless_model, taught_model):
    engine = ProcessEngine()
    try:
        assert isinstance(read(engine.load(endless_model))[-1], Loaded)
        job = engine.generate(ChatRequest.single("hi", Sampling(temperature=0.0, max_tokens=100_000)))
        queued = engine.generate(ChatRequest.single("hi", GREEDY))  # waiting behind the first
        events = []
        for event in job:
            events.append(event)
            if len(events) == 3:
                os.kill(engine._proc.pid, signal.SIGKILL)
        assert event == Failed("the engine process died (exit code -9, SIGKILL)")
        assert read(queued)[-1] == event
        later = read(engine.generate(ChatRequest.single("hi", GREEDY)))
        assert len(later) == 1 and "died" in later[0].message and "load a model" in later[0].message

        assert isinstance(read(engine.load(taught_model))[-1], Loaded)  # a new child
        assert engine.info.name == taught_model.name and engine.info.device in ("cpu", "gpu")  # from the child
        answer = "".join(e.text for e in read(engine.generate(ChatRequest.single(QUESTION, GREEDY)))
                         if isinstance(e, Answer))
        assert answer == "The answer is \\boxed{42}."
    finally:
        engine.close()


def test_load_errors_are_one_line_and_the_engine_survives(engine, taught_model, tmp_path):
    missing = read(engine.load(tmp_path / "no-such-model"))
    assert isinstance(missing[-1], Failed) and "no-such-model" in missing[-1].message
    broken = tmp_path / "broken"
    shutil.copytree(taught_model, broken)
    (broken / "config.json").write_text("{not json")
    failed = read(engine.load(broken))[-1]
    assert isinstance(failed, Failed) and "config.json" in failed.message and "\n" not in failed.message
    assert engine._proc.poll() is None  # the child lives on
    assert isinstance(read(engine.load(taught_model))[-1], Loaded)


def test_close_stops_the_child_and_fails_what_was_open(endless_model):
    engine = ProcessEngine()
    assert isinstance(read(engine.load(endless_model))[-1], Loaded)
    job = engine.generate(ChatRequest.single("hi", Sampling(temperature=0.0, max_tokens=100_000)))
    job.get(timeout=60)  # streaming
    engine.close()
    assert engine._proc.poll() is not None
    events = read(job)
    assert isinstance(events[-1], (Done, Failed))  # cancelled by the close, or failed: never left hanging
    assert read(engine.generate(ChatRequest.single("hi")))[-1] == Failed("the engine was closed")


def test_the_child_exits_when_the_app_process_dies():
    # A parent killed without closing (SIGKILL, a crash): its child sees the socket close and exits.
    parent = subprocess.Popen(
        [sys.executable, "-c", "from workbench.engine.process import ProcessEngine\n"
         "e = ProcessEngine(); print(e._proc.pid, flush=True); import time; time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    for _ in range(600):  # the child is not ours to wait for: poll until it is gone
        try:
            os.kill(child, 0)
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(") ", 1)[-1].startswith("Z"):
                    break  # exited, not yet reaped by init
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the engine process outlived the app")


def test_the_app_command_opens_on_a_process_engine_and_stops_it(monkeypatch):
    from workbench.cli import build_parser
    from workbench.commands import app as app_command
    from workbench.tui.app import WorkbenchApp

    opened = []
    monkeypatch.setattr(WorkbenchApp, "run", lambda self: opened.append(self.engine))
    assert app_command.main(build_parser().parse_args([])) == 0
    assert isinstance(opened[0], ProcessEngine) and opened[0]._proc.poll() is not None
    injected = object.__new__(ProcessEngine)  # any engine object can be injected (here: one never started)
    injected.close = lambda: opened.append("closed")
    assert app_command.main(build_parser().parse_args([]), engine=injected) == 0
    assert opened[1:] == [injected, "closed"]


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are a Linux feature")
def test_a_restarted_child_keeps_normal_priority_when_the_caller_stepped_back(endless_model):
    """The app lowers its own threads' priority; engine children, even one started again after a
    crash from such a thread, run at the priority the engine was created with."""
    import threading

    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    engine = ProcessEngine()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, before + 5)  # as WorkbenchApp.on_mount does
        os.kill(engine._proc.pid, signal.SIGKILL)
        for _ in range(100):  # until the reader has seen the child go
            if engine._dead:
                break
            time.sleep(0.05)
        assert isinstance(read(engine.load(endless_model))[-1], Loaded)  # in a new child
        assert os.getpriority(os.PRIO_PROCESS, engine._proc.pid) == before
    finally:
        engine.close()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, before)
        except PermissionError:
            pass


def test_the_child_has_its_own_process_group_in_the_callers_session():
    """Own group: the terminal's Ctrl+C reaches the app only. Same session: on Linux (autogroup) a new
    session is a new scheduling group with an equal share of the CPU, so the app's lowered priority
    would not count against the engine's threads."""
    engine = ProcessEngine()
    try:
        pid = engine._proc.pid
        assert os.getpgid(pid) == pid != os.getpgid(0)
        assert os.getsid(pid) == os.getsid(0)
        # With autogroup off (some CI kernels) both files read empty, which still compares equal.
        if os.path.exists("/proc/self/autogroup"):
            with open(f"/proc/{pid}/autogroup") as child, open("/proc/self/autogroup") as ours:
                assert child.read() == ours.read()
    finally:
        engine.close()


def start_sender():
    import threading
    from multiprocessing import Pipe

    from workbench.engine import process

    ours, theirs = Pipe()
    outbox = process.Outbox()
    sender = threading.Thread(target=process.send_batches, args=(theirs, outbox), daemon=True)
    sender.start()
    return ours, outbox, sender


def test_an_event_that_will_not_pickle_fails_its_job_instead_of_stopping_the_sender():
    ours, outbox, sender = start_sender()
    outbox.put((7, Think(lambda: None, 1)))  # a lambda does not pickle
    assert ours.poll(10)
    [(job_id, event)] = ours.recv()
    assert job_id == 7 and isinstance(event, Failed) and "could not send" in event.message
    outbox.put((8, Think("fine", 1)))
    outbox.put(None)
    assert ours.poll(10) and ours.recv()[:-1] == [(8, Think("fine", 1))]  # the sender lives on
    sender.join(5)
    assert not sender.is_alive()


def context_switches(tid: int) -> int | None:
    """How often a thread of this process has slept or been preempted (Linux), else None."""
    try:
        with open(f"/proc/self/task/{tid}/status") as f:
            return sum(int(line.split()[1]) for line in f if "ctxt_switches" in line)
    except OSError:
        return None


def test_the_sender_batches_events_and_a_jobs_end_sends_the_batch_at_once(monkeypatch):
    from workbench.engine import process

    monkeypatch.setattr(process, "BATCH_WINDOW", 60.0)  # only a job's end can cut the wait short
    ours, outbox, sender = start_sender()
    deltas = [(3, Think(f"t{i}", 1)) for i in range(100)]
    outbox.put(deltas[0])
    time.sleep(0.1)  # the sender has it and waits out its window
    switches = context_switches(sender.native_id)
    for item in deltas[1:]:  # as a model streams: each one would wake a sender blocked on the queue
        outbox.put(item)
        time.sleep(0.001)
    if switches is not None:
        assert context_switches(sender.native_id) - switches < 10  # ~100 when each event woke it
    assert not ours.poll(0.3)  # still collecting
    outbox.put((3, Done(Stats())))
    assert ours.poll(10)
    batch = ours.recv()
    assert batch[:100] == deltas and isinstance(batch[100][1], Done) and len(batch) == 102
    memory = batch[101]  # each message ends with the child's peak memory: the model lives there
    assert memory[0] is None and memory[1] > 0
    outbox.put(None)
    sender.join(10)
    assert not sender.is_alive()

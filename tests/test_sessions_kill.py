"""`workbench run` saves its response; kill -9 mid-stream loses at most the last half second."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from workbench.models.identity import folder_sha256
from workbench.sessions import Store

WORKBENCH = [sys.executable, "-m", "workbench"]
FLUSH = 0.5  # the recorder's promise
SLACK = 0.5  # scheduling on a busy 2-core machine, pipe latency


@pytest.mark.slow
def test_run_saves_the_response_and_no_save_does_not(taught_model, workbench_home):
    out = subprocess.run([*WORKBENCH, "run", "--json", "What is 12+30?", "--model", str(taught_model)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    with Store.open() as store:
        session = store.session("last")
        user, reply = session["turns"]
        assert user["content"] == "What is 12+30?" and session["kind"] == "run"
        assert reply["status"] == "complete" and reply["model"] == taught_model.name
        assert reply["model_hash"] == folder_sha256(taught_model) and reply["adapter"] is None  # a card's model_sha256
        assert reply["thinking"] == "".join(e["text"] for e in events if e["type"] == "think")
        assert reply["content"] == "".join(e["text"] for e in events if e["type"] == "answer")
        assert reply["stats"]["answer_tokens"] == events[-1]["stats"]["answer_tokens"]
        assert reply["sampling"]["temperature"] == 0.0 and reply["sampling"]["max_tokens"] == 200  # the profile's
        assert reply["inspection"]["consistency"]["final_answer"] == "42"
    out = subprocess.run([*WORKBENCH, "run", "--no-save", "What is 12+30?", "--model", str(taught_model)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    with Store.open() as store:
        assert len(store.list_sessions()) == 1


@pytest.mark.slow
def test_kill_9_mid_stream_keeps_all_but_the_last_half_second(tiny_model, workbench_home):
    # A random model at temperature 0 with a huge budget never stops on its own.
    proc = subprocess.Popen([*WORKBENCH, "run", "--json", "hi", "--model", str(tiny_model), "--temp", "0",
                             "--max-tokens", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    received = []  # (arrival time, event)

    def read():
        for line in proc.stdout:
            received.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while (not received or time.monotonic() - received[0][0] < 3.0) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    assert received, "no output from workbench run"
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with Store.open() as store:  # the restart: the dead writer's response is marked
        reply = store.session("last")["turns"][1]
    assert reply["status"] == "interrupted"
    streamed = {kind: "".join(e["text"] for _, e in received if e["type"] == kind) for kind in ("think", "answer")}
    old = {kind: "".join(e["text"] for t, e in received if e["type"] == kind and t < killed_at - FLUSH - SLACK)
           for kind in ("think", "answer")}
    for kind, column in (("think", "thinking"), ("answer", "content")):
        stored = reply[column]
        assert streamed[kind].startswith(stored)  # nothing invented, in order
        assert stored.startswith(old[kind]) and len(stored) >= len(old[kind])
    assert len(old["think"]) + len(old["answer"]) > 0  # the check above was not vacuous

"""`workbench run` end to end in a subprocess (the real entry point, OpenBLAS re-exec included)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKBENCH = [sys.executable, "-m", "workbench"]


def run(*args, stdin=None):
    return subprocess.run([*WORKBENCH, *args], input=stdin, capture_output=True, text=True, timeout=180)


def test_json_events(taught_model):
    out = run("run", "--json", "What is 12+30?", "--model", str(taught_model))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[-1] == "done" and "think" in types and "answer" in types
    assert types.index("answer") > types.index("think")
    assert "".join(e["text"] for e in events if e["type"] == "answer") == "The answer is \\boxed{42}."
    stats = events[-1]["stats"]
    assert stats["finish_reason"] == "stop" and stats["answer_tokens"] > 0 and stats["thinking_tokens"] > 0
    # The process has returned: the session is in the store, complete, as another process reads it (the run
    # leaves its WAL to its exit, without a checkpoint, and skips the teardown: cli.quick_exit).
    from workbench.sessions import Store

    with Store.open() as store:
        session = store.session("last")
    prompt, reply = session["turns"]
    assert prompt["role"] == "user" and prompt["content"] == "What is 12+30?"
    assert reply["status"] == "complete" and reply["stats"] == stats
    assert reply["thinking"] == "".join(e["text"] for e in events if e["type"] == "think")
    assert reply["content"] == "The answer is \\boxed{42}."
    assert reply["inspection"]["tokens"]["answer"] == stats["answer_tokens"]


def test_plain_output_from_stdin(taught_model):
    out = run("run", "-", "--model", str(taught_model), stdin="What is 12+30?")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.index("Thinking") < text.index("Answer") < text.index("thought for")
    assert "\\boxed{42}" in text and "\x1b" not in text  # no colours when piped


def test_default_model_is_the_embedded_one():
    out = run("run", "--json", "What is 12+30?", "--max-tokens", "40")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["type"] == "done"


EXIT_PROBE = """
import atexit, os
_fd = os.open(os.environ["EXIT_PROBE_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
atexit.register(os.write, _fd, b"atexit\\n")
class _Teardown:  # freed when the interpreter tears its modules down
    def __del__(self, write=os.write, fd=_fd):
        write(fd, b"teardown\\n")
_probe = _Teardown()
"""


def test_nothing_slow_after_the_answer(taught_model, tmp_path):
    # After the last token, `run` saves the response and exits: it neither loads tiktoken's o200k table
    # (~1 s; counted when the response is shown) nor waits for the interpreter to free every module.
    from workbench.sessions import Store

    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "sitecustomize.py").write_text(EXIT_PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "probe"), *sys.path]),
               EXIT_PROBE_FILE=str(tmp_path / "exits"), PYTHONPROFILEIMPORTTIME="1")

    def probed(*args):
        (tmp_path / "exits").write_text("")
        out = subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, timeout=180, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
        imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
        return out, imported, (tmp_path / "exits").read_text().split()

    out, imported, exits = probed("run", "What is 12+30?", "--model", str(taught_model))
    assert "\\boxed{42}" in out.stdout and "mlx_lm" in imported  # the probe saw the real run
    assert "tiktoken" not in imported
    assert exits == ["atexit"]  # atexit handlers ran, the teardown was skipped
    # the store was left to the exit, not closed: closing would checkpoint (fsyncs, unlinks) after the answer
    assert (Path(os.environ["WORKBENCH_HOME"]) / "sessions.db-wal").stat().st_size > 0
    with Store.open() as store:
        reply = store.session("last")["turns"][1]
    assert reply["status"] == "complete" and reply["content"] == "The answer is \\boxed{42}."
    assert reply["inspection"]["tokens"]["thinking_o200k"] is None
    assert reply["inspection"]["tokens"]["thinking"] == reply["stats"]["thinking_tokens"] > 0

    _, imported, exits = probed("models", "--json")  # a command without QUICK_EXIT: the probe sees its teardown
    assert exits == ["atexit", "teardown"] and "tiktoken" not in imported


def test_models_lists_the_embedded_default():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    models = {m["name"]: m for m in json.loads(out.stdout)}
    assert models["r1-nano"]["default"] and models["r1-nano"]["source"] == "shipped"


def test_ctrl_c_stops_cleanly_with_stats(tiny_model, tmp_path):
    # A random model with a huge budget never stops on its own.
    proc = subprocess.Popen([*WORKBENCH, "run", "--json", "hi", "--model", str(tiny_model), "--temp", "0",
                             "--max-tokens", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # generation has started
    assert json.loads(first)["type"] in ("think", "answer")
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=60)
    last = json.loads(rest.strip().splitlines()[-1])
    assert last["type"] == "done" and last["stats"]["finish_reason"] == "cancelled"
    assert proc.returncode == 130


def test_help_is_quick_to_build_and_lists_commands():
    out = run("--help")
    assert out.returncode == 0 and "run" in out.stdout and "doctor" in out.stdout

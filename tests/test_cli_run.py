"""`workbench run` end to end in a subprocess (the real entry point, OpenBLAS re-exec included)."""

import json
import os
import signal
import subprocess
import sys
import time

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

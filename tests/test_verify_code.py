"""The code verifier and its sandbox: HumanEval-format tests, and each hostile completion contained."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from workbench.verify import get_verifier
from workbench.verify.code_tests import extract_code
from workbench.verify.sandbox import Limits, run_python

ROOT = Path(__file__).resolve().parent.parent
FAST = {"wall_seconds": 5, "cpu_seconds": 1}
ADD = {
    "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
    "limits": FAST,
}


def verdict(completion: str, example: dict = ADD):
    return get_verifier("code")(completion, example)


def test_correct_solutions_pass_in_all_shapes():
    assert verdict("    return a + b\n").score == 1.0  # a body continuing the prompt
    assert verdict("<think>easy</think>```python\ndef add(a, b):\n    return a + b\n```").score == 1.0
    assert verdict("Here:\n```\ndef add(a, b):\n    return b + a\n```\nDone.").score == 1.0


def test_wrong_solutions_fail_with_the_error():
    v = verdict("    return a - b\n")
    assert v.score == 0.0 and "AssertionError" in v.reason
    assert verdict("    return a +\n").score == 0.0  # syntax error
    assert verdict("```python\n```").reason == "no code found"


def test_plain_assert_lists_and_missing_tests():
    example = {"tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "limits": FAST}
    assert verdict("def add(a, b):\n    return a + b\n", example).score == 1.0
    assert verdict("def add(a, b):\n    return 3\n", example).score == 0.0
    assert verdict("def add(a, b): return 1", {"entry_point": "add"}).score is None
    assert verdict("x", {**ADD, "entry_point": "add); import os; (os"}).score is None


def test_humaneval_canonical_solutions_pass():
    with gzip.open(ROOT / "workbench/eval/suites/HumanEval.jsonl.gz", "rt") as f:
        tasks = [json.loads(line) for line in f][:3]
    for task in tasks:
        example = {k: task[k] for k in ("prompt", "test", "entry_point")}
        assert verdict(task["canonical_solution"], example).score == 1.0, task["task_id"]
        assert verdict("    return None\n", example).score == 0.0, task["task_id"]


HOSTILE = {
    "infinite loop": ("while True:\n    pass", "CPU limit"),  # the wall limit is generous: CPU stops it
    "sleeping forever": ("import time\ntime.sleep(60)", "timed out"),  # no CPU used: the wall clock stops it
    "fork bomb": ("import os\nwhile True:\n    os.fork()", "not allowed"),
    "fork through posix": ("import posix\nposix.fork()", "not allowed"),
    "subprocess": ("import subprocess\nsubprocess.run(['true'])", "not allowed"),
    "memory hog": ("x = bytearray(8 * 1024 ** 3)", "MemoryError"),
    "growing memory": ("hog = []\nwhile True:\n    hog.append(bytearray(10 ** 7))", "MemoryError"),
    "socket": ("import socket\nsocket.create_connection(('127.0.0.1', 9))", "not allowed"),
    "raw socket module": ("import _socket\n_socket.socket()", "not allowed"),
    "kill the parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", "not allowed"),
    "ctypes": ("import ctypes\nctypes.CDLL(None)", "not allowed"),
    "huge output": ("while True:\n    print('x' * 100000)", "larger than"),
    "rmtree outside": ("import shutil\nshutil.rmtree('/')", "outside"),
    "fake success": ("import os\nos._exit(0)", "exit code 0"),
    "sys.exit(0)": ("import sys\nsys.exit(0)", "SystemExit"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_completions_are_contained(name):
    program, reason = HOSTILE[name]
    wall = 2 if name == "sleeping forever" else 60  # a loaded machine may take long to give 1 s of CPU
    result = run_python(program, Limits(wall_seconds=wall, cpu_seconds=1, memory_mb=256))
    assert not result.passed
    assert reason in result.reason, result


def test_writes_outside_the_temp_dir_are_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')", Limits(**FAST))
    assert not result.passed and "outside" in result.reason
    assert not target.exists()
    inside = run_python("open('mine.txt', 'w').write('x')\nprint(open('mine.txt').read())", Limits(**FAST))
    assert inside.passed and inside.stdout == "x"


def test_environment_is_scrubbed_and_the_parent_unreadable(monkeypatch):
    monkeypatch.setenv("WORKBENCH_TEST_SECRET", "hunter2")
    result = run_python("import os, json\nprint(json.dumps(sorted(os.environ)))", Limits(**FAST))
    assert result.passed and "WORKBENCH_TEST_SECRET" not in result.stdout
    assert set(json.loads(result.stdout)) <= {"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "LC_CTYPE"}
    snoop = run_python(f"print(open('/proc/{os.getpid()}/environ').read())", Limits(**FAST))
    assert not snoop.passed and "hunter2" not in snoop.stdout


def test_output_is_capped():
    result = run_python("print('y' * 50000)", Limits(output_chars=100, file_size_mb=1, **FAST))
    assert result.passed and len(result.stdout) <= 101


def test_extract_code_prefers_the_last_block_of_the_answer():
    text = "<think>```python\nbad()\n```</think>```python\nfirst()\n```\n```py\nsecond()\n```"
    assert extract_code(text) == "second()\n"

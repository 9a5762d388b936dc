"""The code verifier and its sandbox: HumanEval-format tests, and each hostile completion contained.

The hostile suite (here and in test_verify_code_hostile.py) checks after every test that no
sandbox process and no temporary folder is left (the `no_leftovers` fixture in conftest).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox_checks import no_sandbox_leftovers  # noqa: F401 (a fixture)
from workbench.verify import get_verifier, plain, sandbox
from workbench.verify.code_tests import extract_code, literal_asserts
from workbench.verify.sandbox import Limits, run_python

ROOT = Path(__file__).resolve().parent.parent
FAST = {"wall_seconds": 20, "cpu_seconds": 2}
ADD = {
    "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
    "limits": FAST,
}
# The same checks in a form the verifier cannot compare itself: they run in the judge's sandbox.
ADD_JUDGED = {**ADD, "test": "def check(candidate):\n    for a, b in [(2, 3), (-1, 1)]:\n"
                             "        assert abs(candidate(a, b) - (a + b)) < 1e-9\n"}

pytestmark = pytest.mark.usefixtures("no_sandbox_leftovers")


def verdict(completion: str, example: dict = ADD):
    return get_verifier("code")(completion, example)


def test_correct_solutions_pass_in_all_shapes():
    for example in (ADD, ADD_JUDGED):
        assert verdict("    return a + b\n", example).score == 1.0  # a body continuing the prompt
        assert verdict("<think>easy</think>```python\ndef add(a, b):\n    return a + b\n```", example).score == 1.0
        assert verdict("Here:\n```\ndef add(a, b):\n    return b + a\n```\nDone.", example).score == 1.0


def test_wrong_solutions_fail_with_the_error():
    v = verdict("    return a - b\n")
    assert v.score == 0.0 and "AssertionError" in v.reason and "got -1" in v.reason
    judged = verdict("    return a - b\n", ADD_JUDGED)
    assert judged.score == 0.0 and "AssertionError" in judged.reason and "abs(candidate" in judged.reason
    assert "SyntaxError" in verdict("    return a +\n").reason
    assert verdict("```python\n```").reason == "no code found"
    raised = verdict("    raise ValueError('no')\n")
    assert raised.score == 0.0 and raised.reason == "ValueError: no"


def test_plain_assert_lists_and_missing_tests():
    example = {"tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "limits": FAST}
    assert verdict("def add(a, b):\n    return a + b\n", example).score == 1.0
    assert verdict("def add(a, b):\n    return 3\n", example).score == 0.0
    judged = {"tests": ["x = 2", "assert add(x, 1) == 3"], "limits": FAST}
    assert verdict("def add(a, b):\n    return a + b\n", judged).score == 1.0
    assert verdict("def add(a, b):\n    return 4\n", judged).score == 0.0
    assert verdict("def add(a, b): return 1", {"entry_point": "add"}).score is None
    assert verdict("x", {**ADD, "entry_point": "add); import os; (os"}).score is None


def test_which_tests_are_compared_here_and_which_go_to_the_judge():
    cases = literal_asserts(ADD["test"], "add")
    assert [(name, args, expected) for name, args, expected, _ in cases] == [("add", (2, 3), 5), ("add", (-1, 1), 0)]
    assert literal_asserts(ADD_JUDGED["test"], "add") is None
    assert literal_asserts("def check(candidate):\n    assert candidate(x) == 1\n", "f") is None  # a name
    assert literal_asserts("def check(candidate):\n    assert len(candidate(1)) == 1\n", "f") is None
    assert literal_asserts("assert add(1, 2) == 3\nassert len([1]) == 1\n", None) is None  # a builtin


def test_tuples_lists_and_floats_keep_their_meaning():
    pair = {"prompt": "def f():\n", "entry_point": "f", "limits": FAST,
            "test": "def check(candidate):\n    assert candidate() == (0, 1)\n"}
    assert verdict("    return (0, 1)\n", pair).score == 1.0
    assert verdict("    return [0, 1]\n", pair).score == 0.0  # as in Python: (0, 1) != [0, 1]
    tolerant = {**pair, "test": "def check(candidate):\n    assert abs(candidate() - 0.3) < 1e-6\n"}
    assert verdict("    return 0.1 + 0.2\n", tolerant).score == 1.0
    assert verdict("    return 0.31\n", tolerant).score == 0.0
    for value in (None, True, 3, -2.5, float("inf"), "s", [1, [2]], (1, (2,)), {"a": (1,), 2: None}, {1}, frozenset({2})):
        assert plain.decode(json.loads(plain.dumps(value))) == value
        assert type(plain.decode(json.loads(plain.dumps(value)))) is type(value)


def test_not_plain_data_fails():
    class Int(int):
        pass

    for value in (Int(3), object(), [print], {"a": {1, 2}.__iter__()}, 1 + 2j):
        with pytest.raises(plain.NotPlain):
            plain.dumps(value)
    for data in ({"tuple": 1}, {"nope": []}, {"float": "1.5"}, {"dict": [[1]]}, {"set": [[1]]}, {"a": 1, "b": 2}):
        with pytest.raises(plain.NotPlain):
            plain.decode(data)


def test_humaneval_canonical_solutions_pass():
    with gzip.open(ROOT / "workbench/eval/suites/HumanEval.jsonl.gz", "rt") as f:
        tasks = [json.loads(line) for line in f]
    tasks = [tasks[0], tasks[32], tasks[38]]  # literal asserts; a judge with the prompt's helper; a loop
    for task in tasks:
        example = {k: task[k] for k in ("prompt", "test", "entry_point")}
        assert verdict(task["canonical_solution"], example).score == 1.0, task["task_id"]
        assert verdict("    return None\n", example).score == 0.0, task["task_id"]


def test_writes_stay_in_the_sandbox_and_vanish(tmp_path):
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')", Limits(**FAST))
    assert not result.passed and not target.exists()
    inside = run_python("open('mine.txt', 'w').write('x')\nprint(open('mine.txt').read())", Limits(**FAST))
    assert inside.passed and inside.output.strip() == "x"
    again = run_python("import os\nprint(os.listdir('.'))", Limits(**FAST))
    assert again.passed and again.output.strip() == "[]"  # a fresh folder each time


def test_environment_is_scrubbed_and_the_host_invisible(monkeypatch):
    monkeypatch.setenv("WORKBENCH_TEST_SECRET", "hunter2")
    result = run_python("import os, json\nprint(json.dumps(sorted(os.environ)))", Limits(**FAST))
    assert result.passed and "WORKBENCH_TEST_SECRET" not in result.output
    assert set(json.loads(result.output)) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "PWD"}
    snoop = run_python(f"print(open('/proc/{os.getpid()}/environ').read())", Limits(**FAST))
    assert not snoop.passed and "hunter2" not in snoop.output
    seen = run_python("import os\nprint(sorted(os.listdir('/')), len(os.listdir('/proc')))", Limits(**FAST))
    assert seen.passed
    for private in ("home", "etc", "root/.ssh", "work", "tmp", "var"):
        assert not run_python(f"import os\nos.listdir('/{private}')", Limits(**FAST)).passed, private


def test_output_is_capped():
    result = run_python("print('y' * 50000)", Limits(output_chars=100, file_size_mb=1, **FAST))
    assert result.passed and len(result.output) <= 101


def test_extract_code_prefers_the_last_block_of_the_answer():
    text = "<think>```python\nbad()\n```</think>```python\nfirst()\n```\n```py\nsecond()\n```"
    assert extract_code(text) == "second()\n"
    # a thinking that never closes has no answer, as for the math judge: its code is not the answer's
    assert extract_code("<think>```python\nbad()\n```") == ""
    assert extract_code("```python\nbad()\n```", opened=True) == ""
    assert extract_code("```python\nok()\n```") == "ok()\n"


def test_without_isolation_the_verifier_refuses_unless_opted_in(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    missing = sandbox._probe.__wrapped__("linux")
    assert missing.problem and "apt-get install bubblewrap" in missing.problem
    monkeypatch.setattr(sandbox, "_probe", lambda platform: missing)
    monkeypatch.delenv(sandbox.OPT_IN, raising=False)
    refused = verdict("    return a + b\n")
    assert refused.score is None and "\n" not in refused.reason
    assert refused.reason.startswith("code sandbox unavailable: bubblewrap is not installed")
    assert f"{sandbox.OPT_IN}=1" in refused.reason
    monkeypatch.setenv(sandbox.OPT_IN, "1")  # the user's choice: rlimits and a temp folder only
    assert verdict("    return a + b\n").score == 1.0
    assert verdict("    return a - b\n", ADD_JUDGED).score == 0.0


def test_macos_sandbox_exec_with_a_fake(tmp_path, monkeypatch):
    """What runs on a Mac: the deny-by-default profile and the command. Verified here with a fake
    `sandbox-exec` that records the profile and runs the rest unconfined; not verified on a Mac."""
    bin_dir, log = tmp_path / "bin", tmp_path / "profile.sb"
    bin_dir.mkdir()
    fake = bin_dir / "sandbox-exec"
    fake.write_text(f'#!/bin/sh\n[ "$1" = -p ] || exit 64\nprintf "%s" "$2" > {log}\nshift 2\nexec "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    found = sandbox._probe.__wrapped__("darwin")
    assert found == sandbox.Isolation("sandbox-exec", tool=str(fake))
    monkeypatch.setattr(sandbox, "_probe", lambda platform: found)
    assert verdict("    return a + b\n").score == 1.0
    profile = log.read_text()
    assert profile.startswith("(version 1)\n(deny default)\n")
    assert "network" not in profile and "process-fork" not in profile  # denied by default
    writable = re.findall(r"\(allow file-read\* file-write\* \(subpath \"([^\"]+)\"\)", profile)
    assert len(writable) == 1
    assert Path(writable[0]).name.startswith(f"{sandbox.TEMP_PREFIX}{os.getpid()}-")
    assert not Path(writable[0]).exists()  # removed with the verdict


@pytest.mark.skipif(os.geteuid() != 0 or not Path("/usr/bin/python3").exists() or shutil.which("setpriv") is None,
                    reason="needs root (to become another user) and Debian's python3")
def test_a_user_without_root_gets_a_user_namespace():
    """Not root: bwrap makes a user namespace (no capabilities; RLIMIT_NPROC counts this sandbox's
    processes only). Run as `nobody` with Debian's python3, since this checkout's may sit in /root."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
from workbench.verify import get_verifier
add = {ADD!r}
verify = get_verifier("code")
bomb = "import os\\nwhile True:\\n    os.fork()\\n" + "def add(a, b):\\n    return a + b\\n"
print(json.dumps([verify(c, add).to_dict() for c in ("    return a + b\\n", "    return a - b\\n", bomb)]))
"""
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I", "-c",
                           script], capture_output=True, text=True, timeout=300, cwd="/", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    honest, wrong, bomb = json.loads(done.stdout)
    assert honest["score"] == 1.0 and wrong["score"] == 0.0, (honest, wrong)
    assert bomb["score"] == 0.0 and "BlockingIOError" in bomb["reason"], bomb

"""`workbench verify`: JSONL in, one {"score", "reason"} line out per input line, in order."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.cli import main


def run_cli(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "workbench", "verify", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_verify_file_in_order_with_malformed_lines(tmp_path):
    lines = [
        {"completion": "work</think>\\boxed{025}", "answer": "25"},
        {"completion": "\\boxed{\\frac{1}{2}}", "answer": "0.6"},
        "{not json",
        {"answer": "1"},  # no completion
        {"completion": "\\boxed{10^{10^{10}}}", "answer": "1"},
        {"completion": "The final answer is 7", "answer": 7},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    result = run_cli("--verifier", "math", "--timeout", "3", str(path))
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["score"] for o in out] == [1.0, 0.0, None, None, None, 1.0]
    assert all(set(o) == {"score", "reason"} for o in out)
    assert f"{path}:3:" in result.stderr and f"{path}:4:" in result.stderr
    assert result.returncode == 1


def test_verify_stdin_countdown():
    stdin = json.dumps({"completion": "<answer>3 * 4 - 2</answer>", "numbers": [2, 3, 4], "target": 10}) + "\n"
    result = run_cli("--verifier", "countdown", "-", stdin=stdin)
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"score": 1.0, "reason": "reaches 10"}


def test_unknown_verifier_and_missing_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")  # no re-exec of the test process
    assert main(["verify", "--verifier", "nope", "-"]) == 2
    assert "unknown verifier" in capsys.readouterr().err
    assert main(["verify", "--verifier", "math", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap is the Linux sandbox")
def test_verify_code_without_its_sandbox_refuses_in_one_line(tmp_path):
    """No bwrap on PATH: one line naming what to install and how to opt out; nothing scored."""
    import os
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_UNISOLATED_CODE"}
    env["PATH"] = str(bin_dir)
    assert shutil.which("bwrap", path=env["PATH"]) is None
    stdin = json.dumps({"completion": "    return 1\n", "prompt": "def f():\n", "entry_point": "f",
                        "test": "def check(candidate):\n    assert candidate() == 1\n"}) + "\n"
    result = subprocess.run([sys.executable, "-m", "workbench", "verify", "--verifier", "code", "-"], input=stdin,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "bubblewrap is not installed" in result.stderr and "WORKBENCH_UNISOLATED_CODE=1" in result.stderr

"""The one JSON-lines reader (workbench/jsonl.py): bounded nesting, file:line in every problem; and the
commands that read JSONL (sessions import, verify, eval --suite) on a line of 100,000 brackets."""

import json
import subprocess
import sys

import pytest

from workbench.errors import UserError
from workbench.jsonl import MAX_DEPTH, parse_line, parse_lines, read_jsonl

WORKBENCH = [sys.executable, "-m", "workbench"]
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [DEEP, '{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 100_000,
                                  '{"x": ' + DEEP + "}", '"' + "[" * 100_000])
def test_deep_nesting_is_a_value_error_not_a_recursion_error(text):
    with pytest.raises(ValueError, match="nested deeper|Unterminated|Expecting"):
        parse_line(text)


def test_the_depth_limit_is_exact_and_brackets_in_strings_do_not_count():
    assert parse_line("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH}"):
        parse_line("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    text = json.dumps({"s": "[{" * 1000 + '\\"' + "]" * 3, "t": ["]" * 500]})
    assert parse_line(text) == json.loads(text)


def test_nan_and_infinity_are_refused_when_asked():
    assert parse_line('{"a": NaN}')["a"] != 0  # json's default
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match=f"{constant} is not a JSON number"):
            parse_line(f'{{"a": {constant}}}', allow_nan=False)


def test_lines_are_numbered_counting_blank_ones(tmp_path):
    assert [(n, v, p is None) for n, v, p in parse_lines(["1", "", "  ", "[2]"])] == [(1, 1, True), (4, [2], True)]
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n' + DEEP + "\n")
    with pytest.raises(UserError, match=rf"x\.jsonl:3: not valid JSON \(nested deeper"):
        read_jsonl(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UserError, match="x.jsonl: cannot read"):
        read_jsonl(path)


def one_line_error(out, where: str) -> None:
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert where in out.stderr


def test_sessions_import_of_a_deep_line_is_one_line_and_imports_nothing(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "kept?"}]}) + "\n" + DEEP + "\n")
    out = subprocess.run([*WORKBENCH, "sessions", "import", str(path)], capture_output=True, text=True, timeout=120)
    one_line_error(out, f"{path}:2:")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    listed = subprocess.run([*WORKBENCH, "sessions", "list", "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(listed.stdout) == []


def test_verify_scores_the_good_lines_around_a_deep_one(tmp_path):
    path = tmp_path / "v.jsonl"
    good = [json.dumps({"completion": f"\\boxed{{{n}}}", "answer": str(n)}) for n in (2, 3)]
    path.write_text(f"{good[0]}\n{DEEP}\n{good[1]}\n")
    out = subprocess.run([*WORKBENCH, "verify", "--verifier", "math", str(path)], capture_output=True, text=True,
                         timeout=120)
    one_line_error(out, f"{path}:2:")
    assert [json.loads(line)["score"] for line in out.stdout.splitlines()] == [1.0, None, 1.0]
    assert out.returncode == 1


def test_eval_suite_with_a_deep_line(tmp_path):
    from workbench.eval.suites import load_suite

    path = tmp_path / "suite.jsonl"
    path.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n" + DEEP + "\n")
    suite = load_suite(str(path))
    assert len(suite.items) == 1 and suite.problems == [f"{path}:2: not JSON (nested deeper than {MAX_DEPTH} levels)"]
    path.write_text(DEEP + "\n")
    out = subprocess.run([*WORKBENCH, "eval", "--suite", str(path)], capture_output=True, text=True, timeout=120)
    one_line_error(out, f"{path}:1: not JSON (nested deeper")
    assert out.returncode == 2

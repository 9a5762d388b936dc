"""The one JSON-lines reader (workbench/jsonl.py): bounded nesting, file:line in every problem; and the
commands that read JSONL (sessions import, verify, eval --suite) on a line of 100,000 brackets."""

import json
import subprocess
import sys

import pytest

from workbench.errors import UserError
from workbench.jsonl import MAX_DEPTH, JsonlTail, parse_line, parse_lines, read_jsonl

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


# ---- JsonlTail: a file someone else appends to (training metrics, eval progress) -------------------

def test_tail_skips_a_deeply_nested_line_instead_of_raising(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n' + DEEP + "\n" + '{"step": 2}\n')
    tail = JsonlTail(path)
    assert tail.read() == [{"step": 1}, {"step": 2}] and tail.bad == 1


def test_tail_waits_for_a_torn_line_and_counts_non_objects_and_bad_utf8(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"a": 1}\n[1]\n\xff\xfe\n\n{"a": ')
    tail = JsonlTail(path)
    assert tail.read() == [{"a": 1}] and tail.bad == 2
    with open(path, "ab") as f:
        f.write(b'2}\n')
    assert tail.read() == [{"a": 2}] and tail.read() == []


def test_tail_reads_a_file_that_shrank_from_the_start_and_says_so(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    tail = JsonlTail(path)
    assert len(tail.read()) == 3 and not tail.restarted
    path.write_text('{"step": 1}\n')  # a resumed run rewrote it, shorter
    assert tail.read() == [{"step": 1}] and tail.restarted
    assert tail.read() == [] and not tail.restarted


def test_tail_reads_a_replaced_file_from_the_start_even_when_it_is_longer(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n')
    tail = JsonlTail(path)
    assert tail.read() == [{"step": 1}]
    new = tmp_path / "new.jsonl"
    new.write_text('{"step": 7}\n{"step": 8}\n')
    new.replace(path)  # written elsewhere, moved over it (a new file)
    assert tail.read() == [{"step": 7}, {"step": 8}] and tail.restarted


def test_tail_drops_an_endless_line_with_bounded_reads(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("x" * 5000)
    tail = JsonlTail(path, max_line=1000)
    assert tail.read() == [] and tail.bad == 1
    with open(path, "a") as f:
        f.write("y" * 3000 + '\n{"ok": 1}\n')
    reads = [tail.read() for _ in range(3)]  # each reads at most 4 x max_line bytes
    assert [r for r in reads if r] == [[{"ok": 1}]] and tail.bad == 1

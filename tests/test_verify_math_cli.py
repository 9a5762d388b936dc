"""`workbench verify --explain` and `workbench evals --rescore` (re-judging a card's stored completions)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.cli import main
from workbench.eval import card as cards


def test_verify_explain_says_how_each_line_was_decided():
    lines = [{"completion": "work</think>So $k = \\dfrac{2}{4}$.", "answer": "\\frac{1}{2}"},
             {"completion": "\\boxed{41} or \\boxed{42}", "answer": "42"},
             {"completion": "AZYUK2A", "answer": "2"}]
    result = subprocess.run([sys.executable, "-m", "workbench", "verify", "--verifier", "math", "--explain", "-"],
                            input="".join(json.dumps(x) + "\n" for x in lines), capture_output=True, text=True,
                            timeout=120)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0
    assert out[0] == {"score": 1.0, "reason": "matches the gold answer (number)", "extracted": "k = \\dfrac{2}{4}",
                      "extraction": "sole expression", "gold_parsed": "1/2", "answer_parsed": "1/2",
                      "decided_by": "number"}
    assert out[1]["score"] == 0.0 and out[1]["answer_parsed"] == "{41, 42}" and "as one set" in out[1]["decided_by"]
    assert out[2] == {"score": 0.0, "reason": "no final answer found", "extracted": None,
                      "extraction": "no final answer found"}


def sample(thinking, answer, score, extracted, **extra):
    return {"sample": 0, "seed": 0, "thinking": thinking, "answer": answer, "extracted": extracted, "score": score,
            "reason": "matches the gold answer" if score else "expected", "correct": score == 1.0,
            "thinking_tokens": 10, "answer_tokens": 5, "seconds": 0.5, "finish_reason": "stop", **extra}


def old_card(verifier="math") -> dict:
    """A card judged by math/1, whose last-number fallback gave two wrong answers credit."""
    items = [
        {"index": 0, "id": "0", "line": 1, "prompt": "1+1?", "gold": "2", "samples": [
            sample("1+1=2", "AZYUK2A", 1.0, "2")]},
        {"index": 1, "id": "1", "line": 2, "prompt": "2+3?", "gold": "5", "samples": [
            sample("2+3=5", "The answer is \\boxed{5}.", 1.0, "5")]},
        {"index": 2, "id": "2", "line": 3, "prompt": "20+22?", "gold": "42", "samples": [
            sample("it is 41 or 42", "41 or 42", 1.0, "42")]},
        {"index": 3, "id": "3", "line": 4, "prompt": "3*3?", "gold": "9", "samples": [
            sample("3*3 is 9 so the answer", "", 0.0, None, thinking_closed=False)]},
    ]
    card = {"card_version": 1, "model": "m", "model_path": "/x/m", "model_sha256": "ab" * 32,
            "model_files": {"model.safetensors": "cd" * 32}, "adapter": None, "adapter_files": None,
            "suite": {"name": "adds", "source": "adds.jsonl", "sha256": "ef" * 32, "n_items": 4},
            "suite_sha256": "ef" * 32, "verifier": {"name": verifier, "version": f"{verifier}/1"},
            "sampling": {"temperature": 0.0}, "samples": 1, "seed": 0, "machine": {"platform": "test"},
            "finished": "2026-11-23T21:43:38+00:00", "stale": True, "stale_reason": "model files changed: x",
            "items": items}
    summary = cards.summarize(items)
    card.update(summary)
    card["claim"] = cards.claim_check((70.0, "a paper"), summary, "adds")
    return card


@pytest.fixture
def no_reexec(monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")  # no re-exec of the test process


def test_rescore_rewrites_verdicts_summary_and_markdown_but_not_the_hashes(tmp_path, capsys, no_reexec):
    path = tmp_path / "adds-1.json"
    before = old_card()
    assert before["accuracy"] == 0.75 and before["claim"]["inside"]
    path.write_text(json.dumps(before))
    (tmp_path / "adds-1.md").write_text(cards.render_markdown(before))

    assert main(["evals", "--rescore", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: 75.0% -> 25.0% (math/1 -> math/2, 2 verdicts changed)"
    card = json.loads(path.read_text())
    verdicts = [(s["score"], s["extracted"], s["reason"]) for it in card["items"] for s in it["samples"]]
    assert verdicts == [(0.0, None, "no final answer found"), (1.0, "5", "matches the gold answer (number)"),
                        (0.0, None, "several candidate answers (41, 42) and none marked as final"),
                        (0.0, None, "thinking never closed: no answer")]
    assert [s["correct"] for it in card["items"] for s in it["samples"]] == [False, True, False, False]
    assert card["accuracy"] == card["pass_at_1"] == 0.25 and card["correct"] == 1
    assert card["ci95"] == list(cards.wilson(1, 4))
    assert card["claim"]["measured"] == 25.0 and card["claim"]["inside"] is False
    assert card["verifier"] == {"name": "math", "version": "math/2"}
    assert card["rescored"][0]["from"] == "math/1" and card["rescored"][0]["changed"] == 2
    for key in ("model_sha256", "model_files", "suite_sha256", "stale", "stale_reason", "finished"):
        assert card[key] == before[key], key
    md = (tmp_path / "adds-1.md").read_text()
    assert "**Accuracy (pass@1 over 1 sample): 25.0%**" in md and "math/2 (re-scored from math/1" in md

    assert main(["evals", "--rescore", str(path), "--json"]) == 0  # again: nothing changes
    assert json.loads(capsys.readouterr().out)["changed"] == 0
    assert len(json.loads(path.read_text())["rescored"]) == 2


def test_the_listing_names_a_card_judged_by_an_older_verifier(tmp_path, capsys, no_reexec, taught_model):
    import shutil

    folder = tmp_path / "judged"
    shutil.copytree(taught_model, folder)
    (folder / "evals").mkdir(exist_ok=True)
    (folder / "evals" / "adds-1.json").write_text(json.dumps(old_card()))
    assert main(["evals", str(folder)]) == 0
    assert "judged by math/1 (now math/2: evals --rescore re-judges it)" in capsys.readouterr().out
    assert main(["evals", "--rescore", str(folder / "evals" / "adds-1.json")]) == 0
    capsys.readouterr()
    assert main(["evals", str(folder)]) == 0
    assert "judged by" not in capsys.readouterr().out


def test_rescore_refuses_what_it_cannot_judge_in_one_line(tmp_path, capsys, no_reexec):
    code_card = tmp_path / "code.json"
    code_card.write_text(json.dumps(old_card("code")))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(old_card()))
    for path, message in ((code_card, "only math cards can be re-scored"), (not_json, "not a report card"),
                          (tmp_path / "missing.json", "cannot read report card")):
        assert main(["evals", "--rescore", str(good), str(path)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert json.loads(good.read_text())["verifier"]["version"] == "math/1"  # checked all before rewriting any

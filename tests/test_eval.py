"""`workbench eval` / `workbench evals`: suites, report cards bound to the files' sha256, resume, stale cards."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from workbench.errors import UserError
from workbench.eval import card as cards
from workbench.eval.claims import claimed_score
from workbench.eval.runner import EvalOptions, run_eval
from workbench.eval.suites import load_suite
from workbench.models import identity

QUESTION = "What is 12+30?"


@pytest.fixture
def model(taught_model, workbench_home) -> Path:
    """A writable copy of the taught model (answers 12+30 with thinking, then \\boxed{42})."""
    folder = workbench_home / "models" / "taught"
    shutil.copytree(taught_model, folder)
    return folder


def write_suite(tmp_path: Path, golds: list, extra_lines: tuple[str, ...] = ()) -> Path:
    data = tmp_path / "adds.jsonl"
    lines = [json.dumps({"question": QUESTION, "answer": g, "id": f"q{i}"}) for i, g in enumerate(golds)]
    data.write_text("\n".join(lines + list(extra_lines)) + "\n")
    spec = tmp_path / "adds.toml"
    spec.write_text('name = "adds"\nfile = "adds.jsonl"\nprompt_template = "{question}"\nverifier = "math"\n')
    return spec


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- suites -----------------------------------------------------------------------------------

def test_shipped_suites_load_with_their_answers():
    sizes = {"gsm8k": 1319, "math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "humaneval": 164}
    for name, size in sizes.items():
        suite = load_suite(name)
        assert len(suite.items) == size and not suite.problems, name
        assert all(item["gold"] not in (None, "") for item in suite.items)
    gsm = load_suite("gsm8k", limit=1).items[0]
    assert gsm["gold"] == "18" and "Please reason step by step" in gsm["prompt"]
    assert load_suite("aime24", limit=1).items[0]["gold"] == "204"
    assert "def has_close_elements" in load_suite("humaneval", limit=1).items[0]["prompt"]


def test_arithmetic_is_seeded_and_correct():
    a, b, c = load_suite("arithmetic", 50, seed=1), load_suite("arithmetic", 50, seed=1), load_suite("arithmetic", 50, seed=2)
    assert [i["prompt"] for i in a.items] == [i["prompt"] for i in b.items] and a.sha256 == b.sha256
    assert [i["prompt"] for i in a.items] != [i["prompt"] for i in c.items] and a.sha256 != c.sha256
    assert len(load_suite("arithmetic", 7).items) == 7
    for item in a.items:
        x, op, y = re.match(r"What is (\d+)([-+*])(\d+)\?", item["prompt"]).groups()
        x, y = int(x), int(y)
        assert int(item["gold"]) == {"+": x + y, "-": x - y, "*": x * y}[op]
        # The default suite: 3- and 4-digit + and -, 2-digit by 2-digit *.
        assert all(10 <= v <= 99 for v in (x, y)) if op == "*" else all(100 <= v <= 9999 for v in (x, y))
    assert {re.search(r"[-+*]", i["prompt"]).group() for i in load_suite("arithmetic", 300).items} == set("+-*")


def reachable(numbers: list[int], target: int) -> bool:
    """Brute force over orderings and operators (left-to-right is how the generator builds targets)."""
    for perm in itertools.permutations(numbers):
        for ops in itertools.product("+-*/", repeat=len(numbers) - 1):
            value = Fraction(perm[0])
            for op, x in zip(ops, perm[1:]):
                if op == "/" and x == 0:
                    break
                value = value + x if op == "+" else value - x if op == "-" else value * x if op == "*" else value / x
            else:
                if value == target:
                    return True
    return False


def test_countdown_suite_is_seeded_and_solvable():
    suite = load_suite("countdown", 20, seed=3)
    assert suite.sha256 == load_suite("countdown", 20, seed=3).sha256
    for item in suite.items:
        assert reachable(item["example"]["numbers"], item["example"]["target"]), item
        assert ", ".join(map(str, item["example"]["numbers"])) in item["prompt"]


def test_malformed_lines_are_reported_with_file_and_line(tmp_path):
    spec = write_suite(tmp_path, ["42", "42"], ("{broken", "[1, 2]", json.dumps({"question": "x"})))
    suite = load_suite(str(spec))
    assert len(suite.items) == 2
    data = tmp_path / "adds.jsonl"
    assert [p.split(": ")[0] for p in suite.problems] == [f"{data}:3", f"{data}:4", f"{data}:5"]
    with pytest.raises(UserError, match="unknown suite"):
        load_suite("no-such-suite")
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(UserError, match="bad.toml"):
        load_suite(str(tmp_path / "bad.toml"))


def test_wilson_interval_and_claims():
    assert cards.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = cards.wilson(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.4345, abs=1e-4)
    assert cards.wilson(20, 20)[1] == 1.0
    assert claimed_score("DeepSeek-R1-Distill-Qwen-1.5B-4bit", {}, "aime24") == (28.9, "DeepSeek-R1 README")
    assert claimed_score("deepseek-r1-distill-qwen-14b", {}, "math500") == (93.9, "DeepSeek-R1 README")
    assert claimed_score("mine", {"adds": 50}, "adds") == (50.0, "model profile")
    assert claimed_score("mine", {}, "adds") is None


# ---- eval -------------------------------------------------------------------------------------

def test_eval_writes_a_report_card_bound_to_the_files(model, tmp_path):
    (model / "profile.toml").write_text('temperature = 0.0\nmax_tokens = 200\n[claims]\nadds = 60.0\n')
    spec = write_suite(tmp_path, ["42", "42", "41", "042"], ("not json",))
    card, path = run_eval(EvalOptions(suite=str(spec), model=str(model), samples=2), progress_stream=open(os.devnull, "w"))
    assert path.parent == model / "evals" and path.with_suffix(".md").exists()
    assert json.loads(path.read_text()) == card
    # hashes of every weight, config and tokenizer file, computed here independently
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"):
        assert card["model_files"][name] == sha256(model / name)
    assert card["suite_sha256"] == sha256(tmp_path / "adds.jsonl")
    assert card["suite"]["malformed_lines"] and ":5:" in card["suite"]["malformed_lines"][0]
    # the taught model answers 42: three of four golds are 42 (one with a leading zero)
    assert card["n"] == 4 and card["samples"] == 2 and card["n_samples"] == 8
    scores = [[s["score"] for s in item["samples"]] for item in card["items"]]
    assert scores == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    assert card["accuracy"] == card["pass_at_1"] == 0.75
    assert card["ci95"] == pytest.approx(list(cards.wilson(3, 4)))
    first = card["items"][0]["samples"][0]
    assert first["extracted"] == "42" and first["thinking"] and "\\boxed{42}" in first["answer"]
    assert first["thinking_tokens"] > 0 and first["answer_tokens"] > 0 and first["seconds"] > 0
    assert 0 < card["thinking_share"] < 1 and card["verifier"]["version"] == "math/2"
    assert card["claim"] == {"suite": "adds", "claimed": 60.0, "source": "model profile", "measured": 75.0,
                             "ci95": [round(card["ci95"][0] * 100, 2), round(card["ci95"][1] * 100, 2)],
                             "inside": True}
    assert card["versions"]["mlx"] and card["machine"]["platform"]
    assert "claim is **inside**" in path.with_suffix(".md").read_text()


def test_read_only_model_folder_falls_back_to_workbench_home(model, tmp_path, workbench_home):
    (model / "evals").write_text("not a folder")  # the model folder cannot take cards
    spec = write_suite(tmp_path, ["42"])
    _, path = run_eval(EvalOptions(suite=str(spec), model=str(model)), progress_stream=open(os.devnull, "w"))
    assert path.parent == workbench_home / "evals" / "taught"


def test_changed_files_make_cards_stale(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")
    from workbench.cli import main

    spec = write_suite(tmp_path, ["42"])
    _, path = run_eval(EvalOptions(suite=str(spec), model=str(model)), progress_stream=open(os.devnull, "w"))
    assert main(["evals", str(model), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["stale"] for r in listed] == [False] and listed[0]["accuracy"] == 1.0
    config = json.loads((model / "config.json").read_text())
    config["note"] = "edited"
    (model / "config.json").write_text(json.dumps(config))
    assert main(["evals", str(model)]) == 0
    assert "STALE: model files changed: config.json" in capsys.readouterr().out
    assert json.loads(path.read_text())["stale"] is True  # written into the card itself


def test_cli_json_prints_only_the_card(model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")  # no re-exec of the test process
    from workbench.cli import main

    spec = write_suite(tmp_path, ["42", "7"])
    assert main(["eval", "--model", str(model), "--suite", str(spec), "--json"]) == 0
    out, err = capsys.readouterr()
    card = json.loads(out)
    assert {"accuracy", "ci95", "n", "model_sha256", "suite_sha256"} <= set(card)
    assert card["accuracy"] == 0.5 and card["n"] == 2
    assert "2/2" in err and "accuracy 50.0%" in err  # progress went to stderr


class CountingEngine:
    """The real engine, counting generate() calls."""

    def __init__(self) -> None:
        from workbench.engine.thread import ThreadEngine

        self.engine, self.generated = ThreadEngine(), 0

    def load(self, *args):
        return self.engine.load(*args)

    def generate(self, request):
        self.generated += 1
        return self.engine.generate(request)

    def close(self):
        self.engine.close()


def wait_for_samples(model: Path, at_least: int, process) -> Path:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        found = list((model / "evals").glob(".adds-*.partial.jsonl")) if (model / "evals").exists() else []
        if found and len(found[0].read_text().splitlines()) >= at_least:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"eval did not record {at_least} samples (exit {process.poll()})")


@pytest.mark.slow
def test_ctrl_c_then_kill_9_then_resume_loses_at_most_the_item_in_flight(model, tmp_path):
    n = 8
    spec = write_suite(tmp_path, ["42"] * n)
    command = [sys.executable, "-m", "workbench", "eval", "--model", str(model), "--suite", str(spec)]
    # Ctrl-C: the sample in flight is cancelled, the run ends with 130 and says how to continue
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    partial = wait_for_samples(model, 2, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "--resume" in err
    after_ctrl_c = len(partial.read_text().splitlines())
    # kill -9 of a resumed run
    process = subprocess.Popen(command + ["--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_samples(model, after_ctrl_c + 2, process)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(partial.read_text().splitlines())
    assert after_ctrl_c + 2 <= done_before < n
    with pytest.raises(UserError, match="--resume"):
        run_eval(EvalOptions(suite=str(spec), model=str(model)), progress_stream=open(os.devnull, "w"))
    engine = CountingEngine()
    try:
        card, _ = run_eval(EvalOptions(suite=str(spec), model=str(model), resume=True), engine=engine,
                           progress_stream=open(os.devnull, "w"))
    finally:
        engine.close()
    assert card["n"] == n and card["accuracy"] == 1.0
    assert engine.generated == n - done_before  # nothing recorded was generated again
    assert [item["index"] for item in card["items"]] == list(range(n))
    assert not partial.exists()


def test_shipped_models_get_their_cards_in_workbench_home(workbench_home):
    from workbench.models.local import resolve_model

    folder = resolve_model("r1-nano")
    assert cards.is_shipped(folder)
    shipped = sorted((folder / "evals").iterdir())  # the cards made with the model (manifest.toml)
    out, fallback = cards.cards_dir(folder)
    assert fallback and out == workbench_home / "evals" / "r1-nano"
    assert sorted((folder / "evals").iterdir()) == shipped  # nothing new inside the package


class ScriptedEngine:
    """An engine speaking the real event vocabulary, with scripted replies (no MLX): fast edge cases."""

    def __init__(self, replies) -> None:
        from workbench.engine.events import ModelInfo

        self.replies, self.loads = list(replies), []
        self.info_cls = ModelInfo

    def load(self, model, adapter=None, trust_remote_code=False):
        from workbench.engine.events import Loaded
        from workbench.engine.job import Job

        self.loads.append((model, adapter))
        job = Job()
        job.put(Loaded(self.info_cls(name=Path(model).name, path=model, adapter=adapter,
                                     profile={"temperature": 0.6, "max_tokens": 64})))
        return job

    def generate(self, request):
        from workbench.engine.events import Answer, Done, Failed, Stats, Think
        from workbench.engine.job import Job

        job = Job()
        reply = self.replies.pop(0)
        if reply is None:
            job.put(Failed("out of memory"))
        else:
            thinking, answer = reply
            job.put(Think(thinking, 3))
            job.put(Answer(answer, 2))
            job.put(Done(Stats(thinking_tokens=3, answer_tokens=2, finish_reason="stop", thinking_closed=True)))
        return job


def test_adapter_hashes_failures_and_stale_adapters(model, tmp_path, workbench_home):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapters.safetensors").write_bytes(b"weights v1")
    (adapter / "adapter_config.json").write_text("{}")
    spec = write_suite(tmp_path, ["42", "42", "42"])
    engine = ScriptedEngine([("12+30", "\\boxed{42}"), None, ("hm", "\\boxed{10^{10^{10}}}")])
    card, path = run_eval(EvalOptions(suite=str(spec), model=str(model), adapter=str(adapter), temperature=0.0,
                                      verify_timeout=1), engine=engine, progress_stream=open(os.devnull, "w"))
    assert engine.loads == [(str(model), str(adapter))]
    assert card["adapter_files"]["adapters.safetensors"] == hashlib.sha256(b"weights v1").hexdigest()
    assert card["sampling"] == {"temperature": 0.0, "top_p": 0.95, "max_tokens": 64}  # flag over profile
    samples = [item["samples"][0] for item in card["items"]]
    assert [s["score"] for s in samples] == [1.0, None, None]
    assert samples[1]["reason"] == "generation failed: out of memory" and "timed out" in samples[2]["reason"]
    assert card["unjudged"] == 2 and card["accuracy"] == pytest.approx(1 / 3)
    (adapter / "adapters.safetensors").write_bytes(b"weights v2")
    refreshed = cards.refresh_stale(path, identity.file_hashes(model))
    assert refreshed["stale"] and refreshed["stale_reason"] == "adapter files changed"


def test_bare_jsonl_suite_uses_its_prompt_field(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2+2?", "answer": "4"}) + "\n" + json.dumps({"answer": "5"}) + "\n")
    suite = load_suite(str(path))
    assert suite.spec.name == "mine" and suite.spec.verifier == "math"
    assert [i["prompt"] for i in suite.items] == ["What is 2+2?"]
    assert suite.problems == [f"{path}:2: no 'prompt' field for the prompt template"]
    assert suite.sha256 == sha256(path)


def test_cards_of_a_changed_model_are_marked_stale_by_who_lists_them_never_by_loading(model, tmp_path, capsys):
    from workbench.cli import main
    from workbench.engine.loader import load_model

    spec = write_suite(tmp_path, ["42"])
    _, path = run_eval(EvalOptions(suite=str(spec), model=str(model)), progress_stream=open(os.devnull, "w"))
    assert main(["evals", str(model), "--json"]) == 0  # unchanged files: the card stays fresh
    assert json.loads(capsys.readouterr().out)[0]["stale"] is False
    assert json.loads(path.read_text())["stale"] is False
    config = json.loads((model / "config.json").read_text())
    config["note"] = "edited"
    (model / "config.json").write_text(json.dumps(config))
    before = path.read_bytes()
    load_model(model)
    assert path.read_bytes() == before  # loading writes no report card
    assert main(["evals", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["stale"] is True and "config.json" in row["stale_reason"]
    card = json.loads(path.read_text())
    assert card["stale"] is True and "config.json" in card["stale_reason"]


def _card(correct: list[list[bool]]) -> dict:
    return {"items": [{"id": f"p{i}", "samples": [{"correct": c} for c in row]} for i, row in enumerate(correct)]}


@pytest.mark.parametrize("before, after, better, worse, p", [
    ([[True]] * 10, [[True]] * 10, 0, 0, 1.0),  # nothing changed: no evidence
    ([[False]] * 10, [[True]] * 10, 10, 0, 2 / 2 ** 10),  # all ten better: p = 2 * 0.5^10
    ([[False]] * 6 + [[True]] * 4, [[True]] * 6 + [[False]] * 4, 6, 4, 0.75390625),  # 2 * P(X <= 4), n = 10
    ([[False, False], [True, False]], [[True, False], [True, False]], 1, 0, 1.0),  # sampled: mean per problem
])
def test_paired_difference_counts_problems_each_card_got_more_of_right(before, after, better, worse, p):
    diff = cards.paired_difference(_card(before), _card(after))
    assert (diff["better"], diff["worse"]) == (better, worse)
    assert diff["p_value"] == pytest.approx(p)
    assert diff["problems"] == len(before)


def test_paired_difference_matches_problems_by_id_not_position():
    before = _card([[True], [False]])
    after = {"items": list(reversed(_card([[True], [False]])["items"]))}
    assert cards.paired_difference(before, after)["better"] == 0


def test_evals_diff_compares_two_cards_problem_by_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")
    from workbench.cli import main

    before, after = tmp_path / "sft.json", tmp_path / "grpo.json"
    before.write_text(json.dumps({**_card([[False]] * 6 + [[True]] * 4), "suite": {"name": "arithmetic"}}))
    after.write_text(json.dumps({**_card([[True]] * 10), "suite": {"name": "arithmetic"}}))
    assert main(["evals", "--diff", str(before), str(after)]) == 0
    assert capsys.readouterr().out.strip() == (
        "arithmetic, 10 problems in both: 40.0% -> 100.0%; better on 6, worse on 0 (sign test p = 0.0312)")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**_card([[True]]), "suite": {"name": "gsm8k"}}))
    broken = tmp_path / "broken.json"
    broken.write_text('{"items": [')
    no_ids = tmp_path / "no_ids.json"
    no_ids.write_text(json.dumps({"items": [{"samples": [{"correct": True}]}], "suite": {"name": "arithmetic"}}))
    for args, error in [((before, other), "different suites (arithmetic and gsm8k)"),
                        ((before, broken), "is not a report card (not JSON)"),
                        ((no_ids, after), "item 1 has no id or verdicts"),
                        ((before, tmp_path / "missing.json"), "cannot read report card")]:
        assert main(["evals", "--diff", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert error in err and len(err.strip().splitlines()) == 1

"""Thinking-budget sweeps (`workbench eval --budgets`): each budget continues the thinking of the one
below it, with the same outputs as independent runs (greedy), one card holding every point."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from workbench.engine.events import ChatRequest, Done, Sampling
from workbench.engine.thread import ThreadEngine
from workbench.errors import UserError
from workbench.eval.budgets import parse_budgets, sweep
from workbench.eval.runner import EvalOptions, run_eval
from workbench.models.local import resolve_model

GREEDY = Sampling(temperature=0.0, max_tokens=300, seed=0)
PROMPTS = ("What is 4821 + 3967?", "What is 58 * 47?", "What is 7302 - 2865?")
BUDGETS = [0, 64, 170, None]


class CountingEngine:
    """An engine that records the stats of every response it gives."""

    def __init__(self, engine) -> None:
        self.engine, self.stats = engine, []
        self.capabilities = engine.capabilities

    def load(self, *args):
        return self.engine.load(*args)

    def generate(self, request):
        return Recorded(self.engine.generate(request), self.stats)

    def close(self):
        self.engine.close()


class Recorded:
    def __init__(self, job, stats) -> None:
        self.job, self.stats = job, stats

    def cancel(self, reason="cancelled"):
        self.job.cancel(reason)

    def __iter__(self):
        for event in self.job:
            if isinstance(event, Done):
                self.stats.append(event.stats)
            yield event


def same_start(engine) -> None:
    """Leave the engine's KV cache in one known state. Reused and recomputed tokens agree only up to
    floating point (a batch of tokens is not summed as one token at a time), and r1-nano's answers
    after an early cut are near ties: runs compared token for token start from the same cache."""
    engine.generate(ChatRequest.single("reset", Sampling(temperature=0.0, max_tokens=1))).collect()


@pytest.fixture(scope="module")
def nano():
    with ThreadEngine() as engine:
        engine.load(str(resolve_model("r1-nano"))).collect()
        yield engine


def test_budgets_parse_in_order_without_repeats():
    assert parse_budgets("1024, 0,max,256,256") == [0, 256, 1024, None]
    assert parse_budgets("0,32") == [0, 32]
    for bad, words in (("0,lots", "'lots'"), ("-5,10", "out of range"), ("max", "at least two"), ("", "''")):
        with pytest.raises(UserError, match=words):
            parse_budgets(bad)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_a_sweep_continues_each_cut_and_answers_as_independent_runs_do(nano, prompt):
    request = ChatRequest.single(prompt, GREEDY)
    chained, independent = CountingEngine(nano), CountingEngine(nano)
    same_start(nano)
    together = sweep(chained, request, BUDGETS)
    same_start(nano)
    apart = sweep(independent, request, BUDGETS, continue_from_cuts=False)
    fields = ("budget", "thinking", "answer", "thinking_tokens", "answer_tokens", "finish_reason", "thinking_closed", "cut")
    for a, b in zip(together, apart):
        assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
    assert together[0].cut and together[0].thinking_tokens == 0  # budget 0: the answer comes at once
    assert together[1].cut and together[1].thinking_tokens == 64
    assert not together[-1].cut and together[-1].thinking_closed  # unbounded: the model closed its thinking
    # No thinking token is generated twice: the chain's new thinking adds up to the longest thinking.
    assert sum(s.thinking_tokens for s in chained.stats) == together[-1].thinking_tokens
    assert sum(s.thinking_tokens for s in independent.stats) > together[-1].thinking_tokens + 64
    # ...and every continuation's prompt (the question and the thinking so far) came from the KV cache.
    continuations = chained.stats[1:]
    assert continuations and all(s.prompt_cached_tokens >= s.prompt_tokens - 1 for s in continuations)


def test_once_the_model_closes_its_thinking_larger_budgets_reuse_that_response(nano):
    request = ChatRequest.single(PROMPTS[0], GREEDY)
    counting = CountingEngine(nano)
    points = sweep(counting, request, [0, 500, 1000, None])
    assert [p.reused for p in points] == [False, False, True, True]
    assert len(counting.stats) == 2
    assert points[1].answer == points[2].answer == points[3].answer and points[1].thinking_closed


def test_max_tokens_bound_the_chain_as_they_bound_one_run(nano):
    request = ChatRequest.single(PROMPTS[1], Sampling(temperature=0.0, max_tokens=100, seed=0))
    same_start(nano)
    together = sweep(nano, request, [50, 90, None])
    same_start(nano)
    apart = sweep(nano, request, [50, 90, None], continue_from_cuts=False)
    assert [(p.thinking, p.answer, p.finish_reason) for p in together] == [(p.thinking, p.answer, p.finish_reason)
                                                                            for p in apart]
    assert together[-1].finish_reason == "length" and not together[-1].answer


def test_one_card_holds_every_budget_and_a_resumed_sweep_generates_only_what_is_missing(nano, tmp_path):
    options = EvalOptions(suite="arithmetic", model=str(resolve_model("r1-nano")), limit=4,
                          budgets=(0, 128, None), json_progress=True)
    progress = tmp_path / "progress.jsonl"
    with open(progress, "w") as out:
        card, path = run_eval(options, engine=nano, progress_stream=out)
    assert [p["label"] for p in card["budgets"]] == ["0", "128", "max"]
    assert [p["budget"] for p in card["budgets"]] == [0, 128, None]
    for point in card["budgets"]:
        assert point["n"] == 4 and 0 <= point["ci95"][0] <= point["accuracy"] <= point["ci95"][1] <= 1
    assert card["budgets"][0]["changed_from_previous"] is None
    assert card["budgets"][0]["mean_thinking_tokens"] == 0 and card["budgets"][1]["mean_thinking_tokens"] == 128
    assert card["accuracy"] == card["budgets"][-1]["accuracy"] and card["sampling"]["budgets"] == ["0", "128", "max"]
    for item in card["items"]:
        assert set(item["by_budget"]) == {"0", "128", "max"} and item["samples"] == item["by_budget"]["max"]
    assert json.loads(Path(path).read_text())["budgets"] == card["budgets"]  # round-trips
    lines = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [len(line["points"]) for line in lines if "points" in line][-1] == 3

    # Interrupted after two samples: the resumed run generates only the other two.
    fresh = CountingEngine(nano)
    stop_after = 2

    class Interrupting(CountingEngine):
        sent = False

        def generate(self, request):
            started = sum(1 for s in self.stats if s.thinking_cut == "budget" and s.thinking_tokens == 0)
            if request.max_thinking_tokens == 0 and started == stop_after and not self.sent:  # the third sample's first
                self.sent = True
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: the sample in flight is dropped
            return super().generate(request)

    with pytest.raises(KeyboardInterrupt):
        run_eval(EvalOptions(**{**options.__dict__, "json_progress": False, "seed": 1}), engine=Interrupting(nano),
                 progress_stream=open(os.devnull, "w"))
    resumed, _ = run_eval(EvalOptions(**{**options.__dict__, "json_progress": False, "seed": 1, "resume": True}),
                          engine=fresh, progress_stream=open(os.devnull, "w"))
    starts = [s for s in fresh.stats if s.thinking_tokens == 0 and s.thinking_cut == "budget"]
    assert len(starts) == 4 - stop_after  # one budget-0 response per sample not already recorded
    assert [p["n"] for p in resumed["budgets"]] == [4, 4, 4]


def test_a_sweep_refuses_a_single_budget_alongside(nano):
    with pytest.raises(UserError, match="--budgets and --thinking-budget"):
        run_eval(EvalOptions(suite="arithmetic", limit=1, budgets=(0, None), thinking_budget=5), engine=nano)


def test_the_thinking_before_a_cut_keeps_every_character_the_model_wrote(nano):
    """The detokenizer holds a trailing space back until the next token; at a cut it is flushed into the
    thinking, not lost under the budget message (r1-nano's tokens are single characters)."""
    from workbench.eval.budgets import _read

    for budget in (49, 50, 51):
        job = nano.generate(ChatRequest(ChatRequest.single("What is 58 * 47?").messages, GREEDY,
                                        max_thinking_tokens=budget))
        own, cut, _, end = _read(job)
        assert len(own) == end.stats.thinking_tokens == budget, (budget, own)


# ---- the curve ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep_card(nano, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("WORKBENCH_HOME")
    os.environ["WORKBENCH_HOME"] = str(home)
    try:
        _, path = run_eval(EvalOptions(suite="arithmetic", model=str(resolve_model("r1-nano")), limit=3,
                                       budgets=(0, 160, None)), engine=nano, progress_stream=open(os.devnull, "w"))
    finally:
        os.environ.pop("WORKBENCH_HOME") if old is None else os.environ.__setitem__("WORKBENCH_HOME", old)
    return Path(path)


def test_evals_curve_draws_cards_in_the_terminal_and_saves_a_png(sweep_card, tmp_path, capsys):
    from workbench.cli import main

    other = tmp_path / "other.json"  # a second model's card on the same suite (its hash in the legend)
    card = json.loads(sweep_card.read_text())
    card.update(model="other-model", model_sha256="f" * 64)
    other.write_text(json.dumps(card))
    png = tmp_path / "curve.png"
    assert main(["evals", "--curve", str(sweep_card), str(other), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    sha = json.loads(sweep_card.read_text())["model_sha256"]
    assert f"r1-nano {sha[:10]}" in out and "other-model ffffffffff" in out
    assert "mean thinking tokens" in out and "budget    160" in out and "\x1b" not in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evals", "--curve", str(sweep_card), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in listed["curves"][0]["points"]] == ["0", "160", "max"]
    assert Path(listed["png"]) == sweep_card.with_suffix(".curve.png") and Path(listed["png"]).exists()


def test_evals_curve_refuses_in_one_line(sweep_card, tmp_path, capsys):
    from workbench.cli import main

    card = json.loads(sweep_card.read_text())
    cases = {}
    cases["not-a-sweep.json"] = ({k: v for k, v in card.items() if k != "budgets"}, "not a thinking-budget sweep")
    bad = json.loads(json.dumps(card))
    bad["budgets"][1]["accuracy"] = "lots"
    cases["bad-point.json"] = (bad, "budgets[1].accuracy is missing or out of range")
    huge = json.loads(json.dumps(card))
    huge["budgets"][0]["mean_thinking_tokens"] = 1e308
    cases["huge.json"] = (huge, "budgets[0].mean_thinking_tokens is missing or out of range")
    other_suite = json.loads(json.dumps(card))
    other_suite["suite"]["name"] = "gsm8k"
    for name, (content, words) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        assert main(["evals", "--curve", str(path), "--png", str(tmp_path / "x.png")]) != 0
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(other_suite))
    assert main(["evals", "--curve", str(sweep_card), str(mixed)]) != 0
    assert "different suites" in capsys.readouterr().err
    assert main(["evals", "--curve", str(tmp_path / "missing.json")]) != 0
    assert "cannot read report card" in capsys.readouterr().err


def test_a_hostile_card_cannot_write_to_the_terminal(sweep_card, tmp_path, capsys):
    from workbench.cli import main

    card = json.loads(sweep_card.read_text())
    card["model"] = "evil\x1b]52;c;aGk=\x07\x1b[2J"
    card["budgets"][0]["label"] = "\x1b[31mred"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(card))
    assert main(["evals", "--curve", str(path), "--png", str(tmp_path / "h.png")]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_a_thinking_longer_than_the_budget_is_cut_there_what_would_it_have_answered(nano):
    """From a whole response's thinking, the answer at budget B: the same as a run cut at B, from the cache."""
    from workbench.eval.budgets import _read

    messages = ChatRequest.single(PROMPTS[2]).messages
    for budget in (0, 64, 120):  # its whole thinking is 148 tokens
        same_start(nano)
        full = _read(nano.generate(ChatRequest(messages, GREEDY)))[0]
        replayed = _read(nano.generate(ChatRequest(messages, GREEDY, continue_thinking=full, max_thinking_tokens=budget)))
        same_start(nano)
        at_b = _read(nano.generate(ChatRequest(messages, GREEDY, max_thinking_tokens=budget)))
        assert replayed[1] == at_b[1] and replayed[3].stats.thinking_cut == "budget"
        if budget == 120:  # token for token only where the answer is not a near tie: r1-nano's answers after
            assert replayed[2] == at_b[2]  # an early cut are, and the replay reuses tokens the run computed
            # in another batch shape (floating point then differs in the last bits)
        assert replayed[0] == "" and at_b[0] == full[:budget]  # the engine wrote no thinking of its own
        stats = replayed[3].stats
        assert stats.prompt_tokens > budget and stats.prompt_cached_tokens >= stats.prompt_tokens - 1


def test_rescoring_a_sweep_card_rejudges_every_budget(sweep_card, tmp_path):
    from workbench.eval.rescore import rescore_card
    from workbench.verify import VerifierPool

    card = json.loads(sweep_card.read_text())
    for item in card["items"]:  # verdicts as a broken judge would have left them
        for samples in [item["samples"], *item["by_budget"].values()]:
            for s in samples:
                s.update(correct=False, score=0.0)
    card["budgets"] = [{**p, "accuracy": 0.0} for p in card["budgets"]]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(card))
    with VerifierPool(workers=1) as pool:
        rescore_card(path, pool)
    rescored, original = json.loads(path.read_text()), json.loads(sweep_card.read_text())
    assert [p["accuracy"] for p in rescored["budgets"]] == [p["accuracy"] for p in original["budgets"]]
    assert rescored["budgets"][-1]["accuracy"] > 0



def test_a_resumed_sweep_regenerates_what_a_corrupt_partial_file_holds(nano, tmp_path):
    """Records that are not what the runner writes (edited by hand, cut short, wrong types) are generated
    again, never summed into the card (a record without `correct` was a KeyError traceback)."""
    from workbench.eval.runner import read_partial

    good = {"item": 0, "sample": 0, "budget": "max", "thinking": "t", "answer": "a", "correct": True,
            "thinking_tokens": 3, "answer_tokens": 1, "seconds": 0.5}
    path = tmp_path / "partial.jsonl"
    bad = [{**good, "item": 1, "correct": "yes"}, {k: v for k, v in {**good, "item": 2}.items() if k != "correct"},
           {**good, "item": 3, "thinking_tokens": -1}, {**good, "item": 4, "budget": 7}, [1, 2], "[" * 100000]
    path.write_text("\n".join(json.dumps(r) if not isinstance(r, str) else r for r in [good, *bad]) + "\n{torn")
    assert list(read_partial(path)) == [(0, 0, "max")]

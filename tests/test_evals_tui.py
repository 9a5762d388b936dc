"""The app's Evals screen (pilot tests against the scripted engine): the model's report cards, a budget
sweep's curve and points, a sweep launched from the app and watched (a fake eval printing progress
lines), hostile cards and progress lines."""

from __future__ import annotations

import json
import sys

import pytest

from tui_pilot import screen_text, wait_for
from workbench.engine.scripted import ScriptedEngine
from workbench.eval import launch
from workbench.paths import workbench_home
from workbench.tui.app import WorkbenchApp
from workbench.tui.evals_screen import EvalsScreen

pytestmark = pytest.mark.anyio


def cards_folder():
    folder = workbench_home() / "evals" / "nowhere"  # the scripted engine's model is /nowhere: cards fall back here
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep_card(model="r1-nano", labels=("0", "64", "max"), **extra) -> dict:
    budgets = [{"budget": int(lb) if lb.isdigit() else None, "label": lb, "n": 50, "accuracy": 0.2 + 0.3 * i,
                "ci95": [0.1 + 0.3 * i, 0.35 + 0.3 * i], "mean_thinking_tokens": 40.0 * i}
               for i, lb in enumerate(labels)]
    return {"model": model, "model_sha256": "ab" * 32, "model_files": {}, "suite": {"name": "arithmetic"},
            "accuracy": budgets[-1]["accuracy"], "budgets": budgets, **extra}


def show_card(screen, name: str) -> None:
    screen.show(str(next(i for i, (p, _) in enumerate(screen.cards) if p.name == name)))


async def open_evals(pilot, app) -> EvalsScreen:
    await wait_for(pilot, lambda: app.ready)
    await pilot.press("f1")
    await wait_for(pilot, lambda: isinstance(app.screen, EvalsScreen))
    return app.screen


async def test_the_evals_screen_lists_the_cards_and_shows_a_sweeps_curve_and_points():
    folder = cards_folder()
    (folder / "arithmetic-1.json").write_text(json.dumps(sweep_card()))
    (folder / "gsm8k-1.json").write_text(json.dumps({"model": "r1-nano", "model_files": {}, "suite": {"name": "gsm8k"},
                                                     "accuracy": 0.5}))
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await open_evals(pilot, app)
        await wait_for(pilot, lambda: len(screen.cards) == 2)
        show_card(screen, "arithmetic-1.json")
        row = "     max     50     80.0%         70%–95%             80"  # the last point
        await wait_for(pilot, lambda: "sweep of 3" in screen_text(app) and row in screen_text(app))
        text = screen_text(app)
        assert "gsm8k · eval · 50.0%" in text and "arithmetic: accuracy by thinking budget" in text
        assert "r1-nano ababababab" in text  # the legend names the weights
        assert "budget      n  accuracy    95% interval  mean thinking" in text
        show_card(screen, "gsm8k-1.json")  # a card without a sweep
        await wait_for(pilot, lambda: "is not a thinking-budget sweep" in screen_text(app))
        await pilot.press("escape")
        assert not isinstance(app.screen, EvalsScreen)


async def test_hostile_cards_are_escaped_skipped_or_refused_in_one_line():
    folder = cards_folder()
    (folder / "a-hostile.json").write_text(json.dumps(sweep_card(model="evil\x1b]0;owned\x07\x1b[2J",
                                                                 labels=("0", "\x1b[31mred", "max"))))
    (folder / "b-deep.json").write_text('{"model_files": ' + "[" * 100_000 + "]" * 100_000 + "}")
    broken = sweep_card()
    broken["budgets"][1]["accuracy"] = "lots"
    (folder / "c-broken.json").write_text(json.dumps(broken))
    (folder / "d-notjson.json").write_text("not json {")
    for ci95 in (5, True, {"a": 1}, [0.1]):  # the interval of a point that is not two numbers
        odd = sweep_card()
        odd["budgets"][0]["ci95"] = ci95
        (folder / f"e-ci95-{type(ci95).__name__}-{len(str(ci95))}.json").write_text(json.dumps(odd))
    app = WorkbenchApp(ScriptedEngine(name="evil[/]"))  # a served model's name is the server's: no markup
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await open_evals(pilot, app)
        await wait_for(pilot, lambda: len(screen.cards) == 6 and screen.shown is not None)
        assert sorted(p.name for p, _ in screen.cards)[:2] == ["a-hostile.json", "c-broken.json"]
        for path, _ in screen.cards:
            if path.name.startswith("e-ci95"):
                show_card(screen, path.name)
                await wait_for(pilot, lambda: "budgets[0].ci95 is missing or out of range" in screen_text(app))
        show_card(screen, "a-hostile.json")
        await wait_for(pilot, lambda: "\\x1b[31mred" in screen_text(app))
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text
        assert "evil\\x1b]0;owned" in text  # the legend, escaped
        show_card(screen, "c-broken.json")
        await wait_for(pilot, lambda: "budgets[1].accuracy is missing or out of range" in screen_text(app))


async def start_sweep(pilot, app, arguments: str, until=lambda run: run.sweep.done == 2) -> EvalsScreen:
    """Open the Evals screen, launch a sweep with `arguments`, wait until `until(app.eval_run)`."""
    screen = await open_evals(pilot, app)
    screen.query_one("#eval-args").value = arguments
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.eval_run is not None and until(app.eval_run))
    return screen


FAKE_EVAL = r"""
import json, pathlib, signal, sys, time
cards, gate, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
def line(x):
    sys.stderr.write(x + "\n"); sys.stderr.flush()
def stopped(*_):
    line(json.dumps({"note": "interrupted after 2 of 4 samples; run the same command with --resume to continue"}))
    sys.exit(130)
signal.signal(signal.SIGINT, stopped)
line(json.dumps({"note": "loading"}))
line(json.dumps({"done": 0, "total": 4, "correct": 0, "points": []}))
pt = lambda b, c, t: {"budget": b, "correct": c, "thinking_tokens": t}
line(json.dumps({"done": 1, "total": 4, "correct": 1, "points": [pt("0", False, 0), pt("64", True, 50), pt("max", True, 90)]}))
line("[" * 100000 + "]" * 100000)  # hostile: deep nesting
line("Traceback (most recent call last): not a progress line")
line(json.dumps({"done": -1, "total": 4, "points": []}))  # not counts
line(json.dumps({"done": 2, "total": 4, "points": [{"budget": "0", "correct": "yes", "thinking_tokens": 3}]}))
line(json.dumps({"done": 2, "total": 4, "points": [pt(str(i), True, 1) for i in range(100)]}))  # too many budgets
line(json.dumps({"done": 2, "total": 4, "correct": 1, "points": [pt("0", False, 0), pt("64", False, 64), pt("max", True, 110)]}))
while not gate.exists():
    time.sleep(0.02)
if mode == "fail":
    line("workbench: error: the suite is broken")
    sys.exit(2)
card = {"model": "scripted", "model_files": {}, "suite": {"name": "arithmetic"}, "accuracy": 1.0, "budgets": [
    {"label": "0", "n": 4, "accuracy": 0.25, "ci95": [0.05, 0.7], "mean_thinking_tokens": 0},
    {"label": "max", "n": 4, "accuracy": 1.0, "ci95": [0.5, 1.0], "mean_thinking_tokens": 123}]}
(cards / "arithmetic-new.json").write_text(json.dumps(card))
line(json.dumps({"done": 4, "total": 4, "correct": 4, "points": []}))
"""


def fake_eval(monkeypatch, tmp_path, mode="ok"):
    script = tmp_path / "fake_eval.py"
    script.write_text(FAKE_EVAL)
    gate, launched = tmp_path / "gate", []

    def command(arguments, model, adapter=None):
        launched.append((arguments, model))
        return [sys.executable, str(script), str(cards_folder()), str(gate), mode]

    monkeypatch.setattr(launch, "eval_command", command)
    return gate, launched


async def test_a_sweep_launched_from_the_app_draws_a_running_curve_skips_bad_lines_and_shows_its_card(tmp_path,
                                                                                                      monkeypatch):
    gate, launched = fake_eval(monkeypatch, tmp_path)
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await start_sweep(pilot, app, "--suite arithmetic --limit 4 --budgets 0,64,max")
        assert launched == [("--suite arithmetic --limit 4 --budgets 0,64,max", "/nowhere")]
        sweep = app.eval_run.sweep
        assert {lb: (t.n, t.correct, t.thinking_tokens) for lb, t in sweep.tallies.items()} == {
            "0": (2, 0, 0), "64": (2, 1, 114), "max": (2, 2, 200)}
        curve = sweep.curve("m", "arithmetic")
        assert [p.accuracy for p in curve.points] == [0.0, 0.5, 1.0] and curve.points[1].thinking_tokens == 57
        from workbench.eval.card import wilson

        assert (curve.points[1].low, curve.points[1].high) == wilson(1, 2)
        await wait_for(pilot, lambda: "2/4 samples" in screen_text(app) and "5 unreadable progress lines skipped"
                       in screen_text(app))
        assert screen.shown == "running"
        row = "      64      2     50.0%"  # the budget 64 so far: 1 of 2, at 57 thinking tokens
        await wait_for(pilot, lambda: "scripted (running)" in screen_text(app) and row in screen_text(app))
        assert [line.split()[-1] for line in screen_text(app).splitlines() if row in line] == ["57"]
        await pilot.press("escape")  # leaving the screen leaves the eval going
        gate.touch()
        await wait_for(pilot, lambda: app.eval_run.returncode == 0)
        assert app.eval_run.sweep.done == 4
        screen = await open_evals(pilot, app)
        await wait_for(pilot, lambda: any(p.name == "arithmetic-new.json" for p, _ in screen.cards))
        # reopened after it ended: the new card is listed; once more on the screen when it ends, it is shown
        assert "finished" in screen_text(app) or screen.shown is not None


async def test_the_new_card_is_shown_when_the_sweep_ends_on_the_screen(tmp_path, monkeypatch):
    gate, _ = fake_eval(monkeypatch, tmp_path)
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await start_sweep(pilot, app, "--suite arithmetic --budgets 0,max")
        gate.touch()
        await wait_for(pilot, lambda: screen.shown is not None and screen.shown != "running"
                       and screen.cards[int(screen.shown)][0].name == "arithmetic-new.json")
        await wait_for(pilot, lambda: "123" in screen_text(app) and "finished" in screen_text(app))


async def test_stop_interrupts_the_sweep_and_says_how_to_resume(tmp_path, monkeypatch):
    fake_eval(monkeypatch, tmp_path)
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await start_sweep(pilot, app, "--suite arithmetic --budgets 0,max")
        await pilot.click("#stop")
        await wait_for(pilot, lambda: app.eval_run.returncode is not None)
        assert app.eval_run.returncode == 130
        await wait_for(pilot, lambda: "run the same command with --resume" in screen.status_text)
        assert "exit 130" in screen.status_text


async def test_quitting_the_app_interrupts_the_sweep_it_started_resumably(tmp_path, monkeypatch):
    fake_eval(monkeypatch, tmp_path)
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        await start_sweep(pilot, app, "--suite arithmetic --budgets 0,max")
        process = app.eval_run.launched.process
    assert process.wait(timeout=30) == 130  # its SIGINT handler ran: as Ctrl-C, finished samples kept


async def test_a_failed_sweep_shows_the_error_line(tmp_path, monkeypatch):
    gate, _ = fake_eval(monkeypatch, tmp_path, mode="fail")
    gate.touch()
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(150, 44)) as pilot:
        screen = await start_sweep(pilot, app, "--suite arithmetic --budgets 0,max", lambda run: run.returncode == 2)
        await wait_for(pilot, lambda: "workbench: error: the suite is broken" in screen.status_text)
        assert "ended (exit 2)" in screen.status_text


def test_the_eval_command_is_workbench_eval_of_the_loaded_model_with_json_progress():
    argv = launch.eval_command("--suite arithmetic --limit 5 --budgets 0,max", "/models/m", "/ad")
    assert argv[1:] == ["-m", "workbench", "eval", "--model", "/models/m", "--adapter", "/ad", "--suite", "arithmetic",
                        "--limit", "5", "--budgets", "0,max", "--progress-json"]
    for bad, why in (("--suite a --model other", "sets this itself"), ("--limit 5", "say which suite"),
                     ("--suite 'a", "quotation"), ("--suite a --budgets 0 --mod other", "sets this itself"),
                     ("--suite a --budgets 0 --endp http://h:1", "sets this itself"),
                     ("--suite a --budgets 0 -mother", "sets this itself"), ("--suite a --limit 5", "say which budgets")):
        with pytest.raises(ValueError, match=why):
            launch.eval_command(bad, "/models/m")


def test_the_runners_json_progress_is_what_the_running_sweep_reads():
    """The eval's own progress lines (runner.Progress with as_json) pass RunningSweep's checks."""
    import io

    from workbench.eval.runner import Progress
    from workbench.jsonl import parse_line

    out = io.StringIO()
    progress = Progress(2, out, as_json=True)
    progress.note("resuming: 0 of 2 samples already done")
    progress.update(0, 0, 0)
    records = [{"budget": "0", "correct": False, "thinking_tokens": 0}, {"budget": "max", "correct": True,
                                                                        "thinking_tokens": 37}]
    progress.update(1, 1, 1, records)
    sweep = launch.RunningSweep()
    for line in out.getvalue().splitlines():
        sweep.add(parse_line(line))
    assert sweep.bad == 0 and sweep.notes == ["resuming: 0 of 2 samples already done"]
    assert (sweep.done, sweep.total) == (1, 2)
    assert {lb: (t.n, t.correct, t.thinking_tokens) for lb, t in sweep.tallies.items()} == {"0": (1, 0, 0),
                                                                                            "max": (1, 1, 37)}

"""The app's parts from other features: remote engine and cluster summary, model picker with catalog
and pull, marker highlighting, compare. Pilot tests (App.run_test) on the scripted engine and fakes;
no MLX, no network (servers run on 127.0.0.1)."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input

from workbench.distributed.server import ChatServer
from workbench.engine.events import Message
from workbench.engine.remote import RemoteEngine
from workbench.models import pull
from workbench.train import launch
from tui_pilot import ask, screen_text, submit, wait_for
from workbench.tui.app import WorkbenchApp
from workbench.tui.panes import ThinkingView
from workbench.engine.scripted import ScriptedEngine, script_from_text

pytestmark = pytest.mark.anyio


THINKING = "Hmm, 12+30.\n\nWait, let me check: ones 2+0=2, tens 1+3=4.\n"
ANSWER = "The answer is \\boxed{42}."




# ---- 1. remote engine -------------------------------------------------------------------------------
RANKS = [
    {"rank": 0, "host": "mac-a", "mode": "pipeline", "first_layer": 0, "end_layer": 14, "total_layers": 24,
     "memory_gb": 3.1},
    {"rank": 1, "host": "mac-b", "mode": "pipeline", "first_layer": 14, "end_layer": 24, "total_layers": 24,
     "memory_gb": 2.2, "peak_gb": 2.6},
]


@pytest.fixture
def server():
    """Our OpenAI-compatible server on a free loopback port, answering from a scripted engine."""
    started = []

    def start(cluster=list, token="s3cret", script=None):
        engine = ScriptedEngine([script or script_from_text(THINKING, ANSWER, chunk=6)])
        srv = ChatServer(("127.0.0.1", 0), engine.generate, "r1-cluster", token=token, cluster=cluster)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}", engine

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


def test_endpoint_option_opens_the_app_on_a_remote_engine(monkeypatch, server):
    from workbench.cli import build_parser
    from workbench.commands import app as app_command

    url, _ = server()
    monkeypatch.setenv("WORKBENCH_TOKEN", "s3cret")
    opened = []
    monkeypatch.setattr(WorkbenchApp, "run", lambda self: opened.append(self.engine))
    assert app_command.main(build_parser().parse_args(["--endpoint", url])) == 0
    assert isinstance(opened[0], RemoteEngine) and opened[0].endpoint == url and opened[0].token == "s3cret"


async def test_remote_engine_streams_and_the_status_line_says_where_and_which_ranks(server):
    calls = []

    def cluster():
        calls.append(1)
        return RANKS

    url, engine = server(cluster)
    app = WorkbenchApp(RemoteEngine(url, token="s3cret"))
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready and "2 ranks" in screen_text(app))  # drawn, not only set
        text = screen_text(app)
        assert f"r1-cluster on {url}" in text
        assert "2 ranks · r0 layers 0-13, 3.1 GB · r1 layers 14-23, 2.6 GB" in text
        await ask(pilot, app)
        assert app.last.error is None and app.last.thinking == THINKING and app.last.answer == ANSWER
        assert engine.requests[0].messages == (Message("user", "What is 12+30?"),)
        await wait_for(pilot, lambda: len(calls) >= 2)  # the summary is refreshed after each response
        assert "thought for" in screen_text(app) and "r0 layers 0-13" in screen_text(app)


async def test_other_servers_show_only_where_the_model_runs(server):
    url, _ = server()  # no ranks: not a cluster
    app = WorkbenchApp(RemoteEngine(url, token="s3cret"))
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.pause(0.2)
        assert f"on {url}" in screen_text(app) and "ranks" not in screen_text(app)
        assert app.status.cluster == "" and app.status.size.height == 1


async def test_unreachable_endpoint_is_a_load_error_not_a_crash(server):
    url, _ = server(token="s3cret")
    app = WorkbenchApp(RemoteEngine(url, token="wrong"))
    async with app.run_test(size=(160, 30)) as pilot:
        await wait_for(pilot, lambda: app.load_failed)
        assert "401" in screen_text(app)


async def test_esc_stops_a_remote_response_at_once_when_the_server_stalls(server):
    """The server streams a little thinking, then nothing: Esc must not wait for the network (120 s)."""
    from workbench.engine.events import Think
    from workbench.engine.scripted import Script

    hold = threading.Event()
    url, _ = server(script=Script([Think("thinking hard ", 1)], hold=hold))
    app = WorkbenchApp(RemoteEngine(url, token="s3cret"))
    try:
        async with app.run_test(size=(160, 30)) as pilot:
            await submit(pilot, app)
            await wait_for(pilot, lambda: "thinking hard" in app.query_one(ThinkingView).raw)
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.last is not None)  # 10 s at most, not the stream's 120 s timeout
            assert app.last.error is None and app.last.stats.finish_reason == "cancelled"
            assert app.last.thinking == "thinking hard " and app.last.stats.thinking_tokens == 1
    finally:
        hold.set()


# ---- 2. model picker: catalog models that fit, pull with a progress bar ------------------------------
@pytest.fixture
def machine(monkeypatch):
    """A 24 GB machine with 500 GB free: the 7B/8B distills fit, 32B and 70B do not."""
    from workbench.models import recommend

    monkeypatch.setattr(recommend, "machine_memory", lambda: 24 * 10**9)
    monkeypatch.setattr(recommend, "free_disk", lambda path: 500 * 10**9)


def picker_ids(app) -> list[str]:
    from textual.widgets import OptionList

    options = app.screen.query_one("#models", OptionList)
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


class FakePull:
    """Stands in for workbench.models.pull.pull: reports progress in steps (waiting for the test between
    them), then installs a model folder in the user models directory."""

    def __init__(self, fail: str | None = None):
        self.fail, self.calls = fail, []
        self.step, self.reported = threading.Semaphore(0), threading.Event()

    def __call__(self, name, on_progress=None, context=32768, kv_bits=0):
        from workbench.errors import UserError
        from workbench.paths import user_models_dir

        self.calls.append(name)
        self.fit = (context, kv_bits)  # the KV cache the fit check counts (the app's settings)
        total = 4_000_000_000
        for done in (0, total // 2, total):
            assert self.step.acquire(timeout=10), "the test never let the pull go on"
            on_progress(done, total)
            self.reported.set()
        if self.fail:
            raise UserError(self.fail)
        folder = user_models_dir() / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "qwen2"}')
        return folder


async def test_picker_offers_catalog_models_that_fit_and_pulls_with_progress(machine, monkeypatch):
    from textual.widgets import ProgressBar

    from workbench.tui.screens import ModelPicker, PullScreen

    engine = ScriptedEngine([script_from_text(THINKING, ANSWER)])
    monkeypatch.setattr(pull, "pull", fake := FakePull())
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        ids = picker_ids(app)
        assert any(i and i.endswith("r1-nano") for i in ids)  # the local model first
        assert "pull:r1-distill-qwen-7b-4bit" in ids and "pull:r1-distill-llama-8b-8bit" in ids
        assert "pull:r1-distill-qwen-32b-4bit" not in ids and "pull:r1-distill-llama-70b-4bit" not in ids
        assert "r1-distill-qwen-7b-4bit" in screen_text(app)
        app.screen.dismiss(ids.index("pull:r1-distill-qwen-7b-4bit") and "pull:r1-distill-qwen-7b-4bit")
        await wait_for(pilot, lambda: isinstance(app.screen, PullScreen))
        for expected in (0.0, 50.0):
            await pilot.pause(0.15)  # the app redraws the bar at most every 0.1 s
            fake.reported.clear()
            fake.step.release()
            await wait_for(pilot, lambda: fake.reported.is_set())
            bar = app.screen.query_one(ProgressBar)
            await wait_for(pilot, lambda: bar.total == 4_000_000_000 and bar.percentage * 100 == expected)
        assert "2.0 GB of 4.0 GB" in screen_text(app)
        fake.step.release()
        await wait_for(pilot, lambda: not isinstance(app.screen, PullScreen) and app.ready
                       and engine.loads[-1][0] and engine.loads[-1][0].endswith("r1-distill-qwen-7b-4bit"))
        assert fake.calls == ["r1-distill-qwen-7b-4bit"] and fake.fit == (32768, 0)  # no context set: 32k, fp16
        await pilot.press("ctrl+o")  # now a local model, no longer offered for pulling
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        ids = picker_ids(app)
        assert any(i and i.endswith("models/r1-distill-qwen-7b-4bit") for i in ids)
        assert "pull:r1-distill-qwen-7b-4bit" not in ids


async def test_a_failed_pull_says_why_and_loads_nothing(machine, monkeypatch):
    from workbench.tui.screens import PullScreen

    engine = ScriptedEngine([script_from_text(THINKING, ANSWER)])
    monkeypatch.setattr(pull, "pull", fake := FakePull(fail="r1-distill-qwen-7b-4bit: download failed (connection reset)"))
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        app.pull_model("r1-distill-qwen-7b-4bit")
        for _ in range(3):
            fake.step.release()
        await wait_for(pilot, lambda: not isinstance(app.screen, PullScreen)
                       and any("connection reset" in n.message for n in app._notifications))
        assert engine.loads == [(None, None)]


# ---- 3. marker highlighting is the Thinking pane's own ability -----------------------------------------
def highlighted(view, row: int) -> list[str]:
    return [s.text for s in view.render_line(row - view.scroll_offset.y) if s.style and s.style.reverse]


async def test_thinking_pane_highlights_markers_only_while_the_inspector_is_open():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=7)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        await ask(pilot, app)
        view = app.query_one(ThinkingView)
        assert type(view) is ThinkingView and view.highlight is None
        row = next(i for i, r in enumerate(view._rows) if r.startswith("Wait"))
        assert highlighted(view, row) == []
        await pilot.press("f8")
        await pilot.pause()
        assert type(view) is ThinkingView and view.highlight is not None
        assert highlighted(view, row) == ["Wait", "let me check"]
        assert highlighted(view, 0) == ["Hmm"]
        await pilot.press("f8")
        await pilot.pause()
        assert view.highlight is None and highlighted(view, row) == []


async def test_highlight_is_any_pattern_and_keeps_the_row_text():
    import re

    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(100, 30)) as pilot:
        view = app.query_one(ThinkingView)
        view.set_text("ab 12 cd 345\n")
        view.highlight = re.compile(r"\d+")
        await pilot.pause()
        strip = view.render_line(0)
        assert "".join(s.text for s in strip).rstrip() == "ab 12 cd 345"
        assert highlighted(view, 0) == ["12", "345"]


# ---- 4. compare from the app ---------------------------------------------------------------------------
async def open_compare(pilot, app, prompt="What is 12+30?"):
    from workbench.tui.compare_view import CompareSetup

    await wait_for(pilot, lambda: app.ready)
    app.query_one("#prompt", Input).value = prompt
    await pilot.press("ctrl+g")
    await wait_for(pilot, lambda: isinstance(app.screen, CompareSetup))
    return app.screen


async def fill(pilot, screen, **values):
    for name, value in values.items():
        screen.query_one(f"#{name}", Input).value = value
    screen.query_one("#models", Input).focus()
    await pilot.press("enter")


async def test_compare_two_temperatures_side_by_side_and_saved():
    from workbench.sessions import Store
    from workbench.tui.compare_view import CompareScreen

    cold, hot = script_from_text("cold thoughts", "\\boxed{42}", 5), script_from_text("hot thoughts", "\\boxed{41}", 5)
    engine = ScriptedEngine([cold, hot])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        setup = await open_compare(pilot, app)
        await fill(pilot, setup, temps="0.2, 0.8")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [r.sampling.temperature for r in engine.requests] == [0.2, 0.8]
        assert all(r.messages == (Message("user", "What is 12+30?"),) for r in engine.requests)
        columns = app.screen.query(".variant")
        assert [c.border_title for c in columns] == ["temp=0.2", "temp=0.8"]
        text = screen_text(app)
        assert "cold thoughts" in text and "hot thoughts" in text and "What is 12+30?" in text
        assert not app.comparing and app.history == []  # not a chat turn
        with Store.open() as store:
            sessions = store.list_sessions()
            session = store.session("last")
        assert session["kind"] == "compare"
        replies = [t for t in session["turns"] if t["role"] == "assistant"]
        assert [(t["label"], t["thinking"], t["content"]) for t in replies] == [
            ("temp=0.2", "cold thoughts", "\\boxed{42}"), ("temp=0.8", "hot thoughts", "\\boxed{41}")]
        assert replies[0]["inspection"] is not None
        assert len(sessions) == 1  # the chat's recorder did not record the compare runs
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_compare_models_reloads_the_chat_model_afterwards():
    from workbench.tui.compare_view import CompareScreen

    engine = ScriptedEngine([script_from_text("t", "a")])
    app = WorkbenchApp(engine, model="r1-nano")
    async with app.run_test(size=(140, 36)) as pilot:
        setup = await open_compare(pilot, app)
        await fill(pilot, setup, models="model-a, model-b", samples="2", seed="7")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and app.ready)
        assert [c.border_title for c in app.screen.query(".variant")] == [
            "model=model-a seed=7", "model=model-a seed=8", "model=model-b seed=7", "model=model-b seed=8"]
        assert [r.sampling.seed for r in engine.requests] == [7, 8, 7, 8]
        assert engine.loads == [("r1-nano", None), ("model-a", None), ("model-b", None), ("r1-nano", None)]


async def test_compare_form_needs_two_variants_and_numbers():
    from workbench.tui.compare_view import CompareSetup

    engine = ScriptedEngine([script_from_text("t", "a")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        setup = await open_compare(pilot, app)
        for values, problem in (({}, "two or more variants"), ({"temps": "hot, cold"}, "not a number"),
                                ({"temps": "0.5", "samples": "0"}, "samples 1 to 64")):
            await fill(pilot, setup, **{"temps": "", "samples": "", **values})
            await pilot.pause()
            assert isinstance(app.screen, CompareSetup)
            assert problem in str(setup.query_one("#problem").render())
        assert engine.requests == []
        await pilot.press("escape")
        app.query_one("#prompt", Input).value = ""
        await pilot.press("ctrl+g")  # no prompt typed and none asked yet
        await pilot.pause()
        assert not isinstance(app.screen, CompareSetup)


async def test_esc_stops_a_compare_and_shows_what_there_is():
    from workbench.engine.events import Think
    from workbench.engine.scripted import Script
    from workbench.tui.compare_view import CompareScreen

    hold = threading.Event()
    engine = ScriptedEngine([Script([Think("started", 1)], hold=hold)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        setup = await open_compare(pilot, app)
        await fill(pilot, setup, temps="0.2, 0.8")
        await wait_for(pilot, lambda: app.comparing and app.compare_job is not None)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert not app.comparing and len(engine.requests) == 2  # the second one was cancelled at once
        assert "cancelled" in screen_text(app) or "stopped" in screen_text(app)
    hold.set()


# ---- 5. the Train screen -------------------------------------------------------------------------------
FAKE_TRAINER = r"""
import json, sys, time
from pathlib import Path
run = Path(sys.argv[1])
with open(run / "metrics.jsonl", "a") as m, open(run / "samples.jsonl", "a") as s:
    for step in (1, 2, 3):
        m.write(json.dumps({"step": step, "reward": step / 4, "accuracy": step / 3, "kl": 0.01 * step}) + "\n")
        s.write(json.dumps({"step": step, "prompt": "12+30?", "completion": f"<think>add {step}</think>\\boxed{{42}}",
                            "reward": 1.0, "math": 1.0}) + "\n")
    m.flush(); s.flush()
    for _ in range(600):  # until the app's stop button
        if (run / "STOP").exists():
            (run / "checkpoint").write_text("3")
            sys.exit(0)
        time.sleep(0.05)
sys.exit(3)
"""


async def test_train_screen_launches_a_separate_process_shows_curves_and_stops_it(tmp_path, monkeypatch):
    import sys

    from textual.widgets import Sparkline

    from workbench.tui.train_screen import TrainLaunch, TrainScreen

    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    run = tmp_path / "run"
    launched = []

    def command(arguments):
        launched.append(arguments)
        return [sys.executable, str(script), str(run), "--steps", "3"], run

    monkeypatch.setattr(launch, "grpo_command", command)
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainLaunch))
        app.screen.query_one(Input).value = "--steps 3 --name demo"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        screen = app.screen
        assert launched == ["--steps 3 --name demo"] and screen.process.pid != __import__("os").getpid()
        await wait_for(pilot, lambda: len(screen.query_one("#curve-kl", Sparkline).data or []) == 3)
        assert list(screen.query_one("#curve-reward", Sparkline).data) == [0.25, 0.5, 0.75]
        # The samples file is read on the same tick as the metrics but drawn on the next refresh.
        await wait_for(pilot, lambda: all(s in screen_text(app) for s in ("step 3/3", "accuracy 1.000", "add 3", "math 1")))
        await pilot.click("#stop")
        await wait_for(pilot, lambda: screen.process.poll() is not None)
        assert screen.process.returncode == 0 and (run / "checkpoint").read_text() == "3"
        await wait_for(pilot, lambda: "finished (exit 0)" in screen_text(app))


async def test_train_screen_reads_only_complete_lines_and_skips_bad_ones(tmp_path):
    from textual.widgets import Sparkline

    from workbench.tui.train_screen import TrainScreen

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward": 0.5}\nnot json\n[1]\n{"step": 2, "rew')
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(140, 36)) as pilot:
        app.start_training(str(tmp_path))  # an existing folder: watched, nothing launched
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        screen = app.screen
        await pilot.pause()
        assert screen.process is None and list(screen.query_one("#curve-reward", Sparkline).data) == [0.5]
        assert "2 unreadable metrics lines skipped" in screen_text(app)
        with open(tmp_path / "metrics.jsonl", "a") as f:
            f.write('ard": 0.75}\n')  # the torn line completes
        await wait_for(pilot, lambda: list(screen.query_one("#curve-reward", Sparkline).data) == [0.5, 0.75])
        await pilot.press("escape")
        assert not isinstance(app.screen, TrainScreen)


async def test_train_screen_starts_its_curves_over_when_a_resumed_run_rewrites_its_metrics(tmp_path):
    from textual.widgets import Sparkline

    from workbench.tui.train_screen import TrainScreen

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(f'{{"step": {i}, "reward": 0.{i}}}\n' for i in range(1, 6)))
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(140, 36)) as pilot:
        app.start_training(str(tmp_path))
        await wait_for(pilot, lambda: isinstance(app.screen, TrainScreen))
        screen = app.screen
        await pilot.pause()
        assert list(screen.query_one("#curve-reward", Sparkline).data) == [0.1, 0.2, 0.3, 0.4, 0.5]
        metrics.write_text('{"step": 1, "reward": 0.9}\n')  # shorter: rewritten from step 1
        await wait_for(pilot, lambda: list(screen.query_one("#curve-reward", Sparkline).data) == [0.9])


def test_launch_command_is_workbench_train_grpo_in_its_own_run_folder():
    import sys

    argv, run = launch.grpo_command("--steps 5 --name demo")
    assert argv == [sys.executable, "-m", "workbench", "train", "grpo", "--steps", "5", "--name", "demo",
                    "--out", "runs/demo"] and str(run) == "runs/demo"
    argv, run = launch.grpo_command("--out '/tmp/my run' --steps 2")
    assert str(run) == "/tmp/my run" and argv.count("--out") == 1


async def test_while_comparing_the_chat_and_the_picker_wait():
    from workbench.engine.events import Think
    from workbench.tui.compare_view import CompareScreen
    from workbench.engine.scripted import Script
    from workbench.tui.screens import ModelPicker

    hold = threading.Event()
    engine = ScriptedEngine([Script([Think("working", 1)], hold=hold)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        setup = await open_compare(pilot, app)
        await fill(pilot, setup, temps="0.1, 0.9")
        await wait_for(pilot, lambda: app.compare_job is not None)
        await pilot.press("ctrl+o")
        app.query_one("#prompt", Input).value = "another question"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, ModelPicker) and len(engine.requests) == 1 and app.turn_view is None
        hold.set()
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [r.sampling.temperature for r in engine.requests] == [0.1, 0.9]

"""The app's side of issue #25's decoding options: KV bits and the draft model in the settings (ctrl+s),
sent with every request; the draft's acceptance live in the status line and at the end."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input

from tui_pilot import settings_refused, submit, wait_for
from workbench.engine.events import Decoding, Drafted, Stats, Think
from workbench.engine.protocol import Capabilities
from workbench.engine.scripted import Script, ScriptedEngine, script_from_text
from workbench.tui.app import WorkbenchApp
from workbench.tui.panes import StatusLine
from workbench.tui.screens import SettingsScreen

pytestmark = pytest.mark.anyio  # async tests run by anyio's pytest plugin, on asyncio


class LocalScripted(ScriptedEngine):
    """Scripted, but declaring what the local engines do: decoding here."""

    capabilities = Capabilities(steer=True, decode=True)


def done(app, responses: int = 1) -> bool:
    return len(app.responses) >= responses and app.turn_view is not None and app.turn_view.finished


async def test_decoding_settings_are_validated_saved_and_sent():
    engine = LocalScripted([script_from_text("t", "a")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, problem = await settings_refused(pilot, app, "kv_bits", "5")
        assert "kv_bits must be 4 or 8" in problem
        screen.query_one("#kv_bits", Input).value = "4"
        screen.query_one("#kv_start", Input).value = "1000"
        screen.query_one("#draft", Input).value = "r1-distill-qwen-1.5b-4bit"
        screen.query_one("#draft_mode", Input).value = "on"
        screen.query_one("#draft_mode", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert engine.requests[0].decoding == Decoding(kv_bits=4, kv_start=1000, draft="r1-distill-qwen-1.5b-4bit",
                                                       draft_mode="on")


async def test_an_engine_elsewhere_gets_no_decoding_options():
    engine = ScriptedEngine([script_from_text("t", "a")])  # like a remote engine: no `decode`
    app = WorkbenchApp(engine, decoding=Decoding(kv_bits=8))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await submit(pilot, app)
        await pilot.pause()
        assert engine.requests == []  # refused with a notice, nothing sent


async def test_the_status_line_shows_the_drafts_acceptance_live_and_at_the_end():
    hold = threading.Event()
    stats = Stats(thinking_tokens=3, answer_tokens=1, finish_reason="stop", draft="d", draft_tokens=3,
                  draft_proposed=40, draft_accepted=30)
    script = Script([Drafted(30, 40), Think("a", 1), Think("b", 1)], hold=hold, stats=stats)
    app = WorkbenchApp(LocalScripted([script]))
    async with app.run_test(size=(160, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await submit(pilot, app)
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: "draft 75% accepted" in status.text.plain)
        assert "thinking" in status.text.plain  # live, while it thinks
        hold.set()
        await wait_for(pilot, lambda: done(app))
        assert "draft 75% accepted" in status.text.plain and "stop" in status.text.plain


async def test_the_context_round_trips_through_the_settings_and_shows_in_the_status_line():
    from workbench.engine.events import ModelInfo

    engine = LocalScripted([script_from_text("t", "a"), script_from_text("t", "b")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        engine.info = ModelInfo("scripted", "", profile={"context": 0}, context=4096)  # as a loaded model says
        screen, problem = await settings_refused(pilot, app, "context", "-2")
        assert "context must be a token count" in problem
        assert screen.query_one("#context", Input).placeholder == "default: 4096"  # the model's own
        screen.query_one("#context", Input).value = "8192"
        screen.query_one("#context", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        status = app.query_one(StatusLine)
        assert "ctx 8,192" in status.text.plain
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert engine.requests[0].decoding.context == 8192
        assert "ctx 8,192" in status.text.plain  # still there once the response is done
        await pilot.press("ctrl+s")  # reopened: the value saved
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))
        assert app.screen.query_one("#context", Input).value == "8192"
        app.screen.query_one("#context", Input).value = ""  # back to the model's own
        app.screen.query_one("#context", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        assert app.decoding.context is None and "ctx" not in status.text.plain


async def test_the_model_picker_counts_the_kv_cache_at_the_apps_context_and_bits(monkeypatch):
    from textual.widgets import OptionList

    from workbench.models import recommend
    from workbench.tui.screens import ModelPicker

    monkeypatch.setattr(recommend, "machine_memory", lambda: 24 * 10**9)
    monkeypatch.setattr(recommend, "free_disk", lambda path: 500 * 10**9)
    at_32k = {f.entry.name for f in recommend.fits_to_pull(set())}
    at_8k = {f.entry.name for f in recommend.fits_to_pull(set(), context=8192, kv_bits=4)}
    only_short = at_8k - at_32k
    assert only_short  # e.g. the 14B distill at 8 bits
    app = WorkbenchApp(LocalScripted([script_from_text("t", "a")]), decoding=Decoding(context=8192, kv_bits=4))
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        assert only_short <= {f.entry.name for f in app.screen.catalog}
        options = app.screen.query_one(OptionList)
        assert options.option_count > len(only_short)

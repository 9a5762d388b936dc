"""The app saves responses as they stream; sessions sidebar (search, reopen); inspector panel."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input, OptionList

from workbench.sessions import Store
from tui_pilot import ask, submit, wait_for
from workbench.tui.app import WorkbenchApp
from workbench.tui.inspector import InspectorPanel, scroll_thinking_to
from workbench.tui.panes import ThinkingView
from workbench.engine.scripted import ScriptedEngine, script_from_text
from workbench.tui.sessions_panel import SessionsPanel

pytestmark = pytest.mark.anyio


THINKING = "Hmm, 12+30.\n\nWait, let me check: ones 2+0=2, tens 1+3=4.\n\nBut is it 42? Alternatively 30+12=42.\n"
ANSWER = "The answer is \\boxed{42}."




async def test_responses_are_saved_inspected_and_reopened():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=5)], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        await ask(pilot, app, "What is 12+30?")
        await ask(pilot, app, "And 12+31?")  # same chat: same session
        inspector = app.query_one(InspectorPanel)
        await wait_for(pilot, lambda: inspector.inspection is not None)
        with Store.open() as store:
            session = store.session("last")
        assert session["kind"] == "chat" and [t["role"] for t in session["turns"]] == ["user", "assistant"] * 2
        reply = session["turns"][1]
        assert reply["thinking"] == THINKING and reply["content"] == ANSWER and reply["status"] == "complete"
        assert reply["model"] == "scripted"
        assert inspector.inspection["markers"]["counts"]["wait"] == 1
        assert inspector.inspection["consistency"]["consistent"] is True

        # the inspector: toggled with F8, lists steps, jumps between markers with F9
        assert not inspector.display or not inspector.has_class("open")
        await pilot.press("f8")
        assert inspector.has_class("open")
        view = app.query_one(ThinkingView)
        assert view.highlight and view.raw == THINKING
        await pilot.pause()
        rows = [view.render_line(y) for y in range(view.size.height)]
        marked = [seg.text for strip in rows for seg in strip if seg.style and seg.style.reverse]
        assert marked == ["Hmm", "Wait", "let me check", "But", "Alternatively"]
        steps = app.query_one("#inspector-steps", OptionList)
        assert steps.option_count == 4
        summary = str(app.query_one("#inspector-summary").render())
        assert "markers:" in summary and "wait 1" in summary and "matches the thinking" in summary
        await pilot.press("f9")
        assert inspector.marker_index == 0
        await pilot.press("f9", "f9")
        assert inspector.marker_index == 2
        await pilot.press("shift+f9")
        assert inspector.marker_index == 1

        # new chat, one more response: a second session
        await pilot.press("ctrl+n")
        await ask(pilot, app, "Something else")
        with Store.open() as store:
            assert len(store.list_sessions()) == 2

        # the sidebar: F7, search, reopen the first session
        await pilot.press("f7")
        sidebar = app.query_one(SessionsPanel)
        assert sidebar.has_class("open")
        listing = app.query_one("#session-list", OptionList)
        assert listing.option_count == 2
        app.query_one("#session-search", Input).value = "12+31"
        await wait_for(pilot, lambda: listing.option_count == 1)
        await sidebar.ui.reopen(session["id"])
        await pilot.pause()
        assert [m.content for m in app.history if m.role == "user"] == ["What is 12+30?", "And 12+31?"]
        assert app.query_one(ThinkingView).raw == THINKING
        assert sidebar.ui.session_id == session["id"]
        await ask(pilot, app, "One more")  # continues the reopened session
        with Store.open() as store:
            assert len(store.session(session["id"])["turns"]) == 6


async def test_the_inspector_ticks_only_while_open_on_a_streaming_response(monkeypatch):
    # Each tick wakes the app; while generation runs on the same cores that is taken from it. A hidden
    # inspector learns that the response is saved from the recorder instead of polling twice a second.
    ticks = []
    tick = InspectorPanel._tick
    monkeypatch.setattr(InspectorPanel, "_tick", lambda self: (ticks.append(self.has_class("open")), tick(self))[1])
    engine = ScriptedEngine([script_from_text(THINKING * 2, ANSWER, chunk=2)], rate=60)  # ~2.5 s each
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        inspector = app.query_one(InspectorPanel)
        await ask(pilot, app, "What is 12+30?")
        await wait_for(pilot, lambda: inspector.inspection is not None)
        assert len(ticks) <= 2  # when the response started and when it was saved; ~6 when polling

        await pilot.press("f8")  # open: the live summary follows the stream
        await submit(pilot, app, "And 12+31?")
        summary = app.query_one("#inspector-summary")
        await wait_for(pilot, lambda: "streaming" in str(summary.render()))
        await wait_for(pilot, lambda: app.last.prompt == "And 12+31?" and inspector.inspection is not None)
        await wait_for(pilot, lambda: "matches the thinking" in str(summary.render()))
        assert ticks.count(True) >= 3  # ticked while it streamed
        settled = len(ticks)
        await pilot.pause(1.2)
        assert len(ticks) == settled  # and stopped once it was saved


async def test_thinking_scroll_to_offset():
    engine = ScriptedEngine([script_from_text("line\n" * 200, "ok", chunk=50)], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await ask(pilot, app, "q")
        view = app.query_one(ThinkingView)
        scroll_thinking_to(view, len("line\n") * 100)
        await pilot.pause()
        assert view.scroll_y == 100


async def test_a_compare_session_opens_side_by_side():
    from workbench.engine.events import Answer, Done, Sampling, Stats, Think
    from workbench.sessions.recorder import Recorder
    from workbench.tui.compare_view import CompareScreen

    with Store.open() as store:
        sid = store.new_session("What is 12+30?", "compare")
        store.add_turn(sid, "user", "What is 12+30?")
        for label, thinking, answer in (("temp=0.0", "Wait, 42.", "\\boxed{42}"), ("[/]temp=1.0", "Hmm, 41?", "\\boxed{41}")):
            rec = Recorder(store, sid, "What is 12+30?", sampling=Sampling(), label=label)
            for e in (Think(thinking), Answer(answer), Done(Stats(thinking_tokens=3, answer_tokens=2, finish_reason="stop"))):
                rec.feed(e)
    app = WorkbenchApp(ScriptedEngine([script_from_text("t", "a")]))
    async with app.run_test(size=(140, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await app.query_one(SessionsPanel).ui.reopen(sid)
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        titles = [c.border_title for c in app.screen.query(".variant")]
        from rich.text import Text

        # a label is text, not markup: shown as written
        assert [Text.from_markup(str(t)).plain for t in titles] == ["temp=0.0", "[/]temp=1.0"]
        text = "\n".join(str(w.render()) for w in app.screen.query(".summary"))
        assert "wait 1" in text and "hmm 1" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CompareScreen)


async def test_stop_on_loop_setting_stops_a_looping_model():
    loop = "So we add the numbers again and get the same sum as before, then check it. " * 200
    script = script_from_text(loop, "never", chunk=8)
    script.hold = threading.Event()  # never set: only the loop stop can end this response (no race with its end)
    engine = ScriptedEngine([script], rate=3000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.press("f7")
        app.query_one("#stop-on-loop").value = True
        app.query_one("#prompt").focus()
        await pilot.pause()
        await ask(pilot, app, "loop please")
        assert app.last.stats.finish_reason == "loop"
        assert len(app.query_one(ThinkingView).raw) < len(loop) / 2
        with Store.open() as store:
            reply = store.session("last")["turns"][1]
        assert reply["status"] == "stopped" and reply["inspection"]["loops"]["loop"]

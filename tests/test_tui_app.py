"""Pilot tests of the app (App.run_test) against the scripted engine: no MLX, no waiting on a model."""

from __future__ import annotations

import asyncio
import threading

import pytest
from textual.widgets import Collapsible, Input, Markdown, OptionList

from workbench.engine.events import Answer, Message, Think
from tui_pilot import screen_text, settings_refused, submit, wait_for
from workbench.tui.app import CPU_FRAME, FRAME, STATUS_FRAMES, UI_NICE, WorkbenchApp
from workbench.tui.latex import to_unicode
from workbench.tui.panes import SEGMENT_CHARS, FrozenMarkdown, StatusLine, ThinkingView
from workbench.engine.scripted import Script, ScriptedEngine, script_from_text
from workbench.tui.screens import ModelPicker, SettingsScreen

pytestmark = pytest.mark.anyio  # async tests run by anyio's pytest plugin, on asyncio


THINKING = "First, 12+30: ones 2+0=2, tens 1+3=4.\nSo \\(12+30=42\\).\n"
ANSWER = "The answer is \\boxed{42}."




def done(app, responses: int = 1) -> bool:
    """`responses` responses finished and the last one fully drawn."""
    return len(app.responses) >= responses and app.turn_view is not None and app.turn_view.finished


def answer_markdown(app) -> str:
    return app.query(Markdown).last().source


@pytest.mark.parametrize("device, window", [("cpu", CPU_FRAME), ("gpu", FRAME), ("", FRAME)])
async def test_the_app_draws_less_often_when_the_engine_computes_on_this_machines_cpu(device, window):
    """On the CPU the engine needs every core, and each frame drawn is taken from generation."""
    windows = []

    class Recording(ScriptedEngine):
        def generate(self, request):
            job = super().generate(request)
            get_many = job.get_many
            job.get_many = lambda w: windows.append(w) or get_many(w)
            return job

    app = WorkbenchApp(Recording([script_from_text(THINKING, ANSWER, chunk=4)], rate=500, device=device))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert app.last.answer == ANSWER
    assert windows and set(windows) == {window}
    assert app.status.every == STATUS_FRAMES * window  # the status line too: 1/s on the CPU, 2/s elsewhere
    assert CPU_FRAME > FRAME


async def test_submit_streams_into_both_panes_and_records_history():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=4)], rate=500)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert engine.requests[0].messages == (Message("user", "What is 12+30?"),)
        assert app.query_one(ThinkingView).raw == THINKING
        assert "⟦42⟧" in answer_markdown(app)  # LaTeX shown as Unicode, boxed framed
        # The screen catches up with the finished turn on its next refresh (late on a loaded machine).
        await wait_for(pilot, lambda: all(s in screen_text(app) for s in ("So 12+30=42.", "final answer", "thought for")))
        assert app.history == [Message("user", "What is 12+30?"), Message("assistant", ANSWER, THINKING)]
        assert app.query_one("#prompt", Input).value == ""


async def test_mid_stream_both_panes_show_partial_text_and_esc_stops():
    hold = threading.Event()
    engine = ScriptedEngine([Script([Think("thinking hard", 2), Answer("partial answer", 2)], hold=hold)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: "partial answer" in answer_markdown(app))
        assert app.query_one(ThinkingView).raw == "thinking hard"
        assert app.job is not None and app.last is None  # still generating
        assert "answering" in str(app.query_one("#status").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: done(app))
        assert app.last.stats.finish_reason == "cancelled"
        assert "cancelled" in str(app.query_one("#status").render())
        # the partial response stays and counts as a turn
        assert app.history[-1] == Message("assistant", "partial answer", "thinking hard")


async def test_multi_turn_sends_history_and_collapses_earlier_thinking():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=8), script_from_text("again", "Still 42.")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app, 1))
        await submit(pilot, app, "Are you sure?")
        await wait_for(pilot, lambda: done(app, 2))
        second = engine.requests[1].messages
        assert second == (Message("user", "What is 12+30?"), Message("assistant", ANSWER, THINKING),
                          Message("user", "Are you sure?"))
        first_turn_thinking = app.query(Collapsible).first()
        assert first_turn_thinking.collapsed
        assert app.query_one(ThinkingView).raw == "again"


async def test_new_chat_forgets_the_conversation():
    engine = ScriptedEngine([script_from_text("t", "first"), script_from_text("t", "second")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app, 1))
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.history == [] and len(app.query(Markdown)) == 0 and app.query_one(ThinkingView).raw == ""
        await submit(pilot, app, "hello")
        await wait_for(pilot, lambda: done(app, 2))
        assert engine.requests[1].messages == (Message("user", "hello"),)


async def test_regenerate_asks_the_last_prompt_again():
    engine = ScriptedEngine([script_from_text("t", "one"), script_from_text("t", "two")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app, 1))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: done(app, 2))
        assert engine.requests[1].messages == engine.requests[0].messages
        assert [m.content for m in app.history] == ["What is 12+30?", "two"]
        assert len(app.query(Markdown)) == 1  # the old answer was replaced


async def test_model_picker_lists_local_models_and_loads_the_pick():
    engine = ScriptedEngine()
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        options = app.screen.query_one(OptionList)
        names = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any(n.startswith("r1-nano") for n in names)  # the shipped model
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(engine.loads) == 2 and app.ready)
        assert engine.loads[1][0].endswith("r1-nano")
        assert not isinstance(app.screen, ModelPicker)


async def test_settings_are_validated_saved_and_sent():
    engine = ScriptedEngine([script_from_text("t", "a")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, problem = await settings_refused(pilot, app, "top_p", "1.5")
        assert "Top-p" in problem
        screen.query_one("#temperature", Input).value = "0.3"
        screen.query_one("#top_p", Input).value = "0.9"
        screen.query_one("#max_tokens", Input).value = "64"
        screen.query_one("#seed", Input).value = "7"
        screen.query_one("#seed", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen))
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        s = engine.requests[0].sampling
        assert (s.temperature, s.top_p, s.max_tokens, s.seed) == (0.3, 0.9, 64, 7)


async def test_narrow_terminal_stacks_the_panes():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        thinking, answer = app.query_one("#thinking"), app.query_one("#answer")
        assert app.query_one("#panes").has_class("stacked")
        assert thinking.region.bottom <= answer.region.y and thinking.region.width == answer.region.width
        assert thinking.region.height >= 4 and answer.region.height >= 6
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        thinking, answer = app.query_one("#thinking"), app.query_one("#answer")
        assert thinking.region.right <= answer.region.x  # side by side


async def test_thinking_pane_cycles_wide_hidden_normal():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(140, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        thinking = app.query_one("#thinking")
        normal = thinking.region.width
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert thinking.region.width > normal
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert not thinking.display or thinking.region.width == 0
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert thinking.region.width == normal


async def test_prompt_waits_while_the_model_loads():
    gate = threading.Event()
    engine = ScriptedEngine(load_gate=gate)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        app.query_one("#prompt", Input).value = "early"
        await pilot.press("enter")
        assert "loading" in str(app.query_one("#status").render())
        assert any("still loading" in n.message for n in app._notifications)
        gate.set()
        await wait_for(pilot, lambda: app.ready)
        assert engine.requests == []
        assert app.query_one("#prompt", Input).value == "early"


async def test_an_engine_whose_load_blocks_does_not_hold_the_screen():
    """A remote engine whose server never answers may block in load(): the app calls it on a worker."""
    gate = threading.Event()
    safety = threading.Timer(60, gate.set)  # only so that a regression fails instead of hanging
    safety.start()

    class Blocking(ScriptedEngine):
        def load(self, model=None, adapter=None, trust_remote_code=False):
            gate.wait()
            return super().load(model, adapter, trust_remote_code)

    engine = Blocking([script_from_text(THINKING, ANSWER)])
    app = WorkbenchApp(engine)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press("h", "i")
            await pilot.pause()
            assert app.query_one("#prompt", Input).value == "hi" and not gate.is_set()
            assert "loading" in str(app.query_one("#status").render())
            gate.set()
            await wait_for(pilot, lambda: app.ready)
    finally:
        gate.set()
        safety.cancel()


async def test_server_error_text_is_escaped_in_the_notifications():
    hostile = "boom \x1b]0;pwned\x07\x1b[2J gone"
    app = WorkbenchApp(ScriptedEngine(load_error=hostile), model="nope")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: any("boom" in n.message for n in app._notifications))
        assert all("\x1b" not in n.message and "\x07" not in n.message for n in app._notifications)
    engine = ScriptedEngine([Script([Think("hm", 1)], fail=hostile)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: any("boom" in n.message for n in app._notifications))
        assert all("\x1b" not in n.message and "\x07" not in n.message for n in app._notifications)


async def test_load_failure_is_a_notification_and_a_status_not_a_crash():
    app = WorkbenchApp(ScriptedEngine(load_error="no model named 'nope'"), model="nope")
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: "could not load" in str(app.query_one("#status").render()))
        assert any("no model named 'nope'" in n.message for n in app._notifications)
        await ask_anyway(pilot, app)
        assert app.is_running


async def ask_anyway(pilot, app):
    app.query_one("#prompt", Input).value = "hi"
    await pilot.press("enter")
    await pilot.pause()
    assert any("failed to load" in n.message for n in app._notifications)
    assert app.query_one("#prompt", Input).value == "hi"  # the prompt is kept


async def test_generation_failure_is_reported_and_the_app_goes_on():
    engine = ScriptedEngine([Script([Think("hm", 1)], fail="out of memory"), script_from_text("t", "fine")])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert app.last.error == "out of memory"
        assert "error: out of memory" in str(app.query_one("#status").render())
        await wait_for(pilot, lambda: any(n.message == "out of memory" and n.severity == "error"
                                          for n in app._notifications))
        assert app.history == []  # a failed turn is not sent again
        await submit(pilot, app, "again")
        await wait_for(pilot, lambda: done(app, 2) and app.last.error is None)


HOSTILE = "[bold red]x[/] [@click=app.quit]click[/] \x1b[31mred\x1b[0m \x1b]52;c;aGk=\x07 \x9b2J end"


async def test_an_engine_that_cannot_start_a_job_is_an_error_not_a_hang():
    class Refusing(ScriptedEngine):
        def generate(self, request):
            raise OSError("session store: disk I/O error")

    app = WorkbenchApp(Refusing([script_from_text(THINKING, ANSWER)]))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: app.last is not None)
        assert app.last.error == "engine: session store: disk I/O error" and app.job is None
        assert "error: engine: session store: disk I/O error" in str(app.query_one("#status").render())
        await wait_for(pilot, lambda: any("disk I/O error" in n.message for n in app._notifications))


async def test_hostile_model_output_appears_literally():
    engine = ScriptedEngine([script_from_text(HOSTILE + "\n", HOSTILE, chunk=5)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(160, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        await pilot.click("#answer", offset=(10, 3))  # clicking on the answer must not run app.quit
        await pilot.pause()
        assert app.is_running
        await pilot.click("#answer", offset=(4, 2))  # and expanding the earlier thinking shows it literally too
        await pilot.pause()
        text = screen_text(app)
        # thinking pane, the expanded thinking, the answer
        assert text.count("[bold red]x[/] [@click=app.quit]click[/]") == 3
        assert "\\x1b[31mred\\x1b[0m" in text and "\\x1b]52;c;aGk=\\x07" in text and "\\x9b2J end" in text
        assert not any(ord(c) < 32 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in text)


async def test_bidi_controls_are_shown_and_a_lone_surrogate_does_not_break_the_response():
    """U+202E would reverse what the terminal shows; a lone surrogate used to end the response with
    an error (its save failed) and cannot be written to a terminal."""
    engine = ScriptedEngine([script_from_text("think \u202eevil\u202c \u2066x\u2069 a\ud800b\n",
                                              "answer \u202eevil\u202c c\udfffd", chunk=3)])
    app = WorkbenchApp(engine)
    async with app.run_test(size=(160, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert app.last.error is None and app.last.answer == "answer \u202eevil\u202c c\ufffdd"
        await pilot.click("#answer", offset=(4, 2))  # the folded thinking, expanded
        await pilot.pause()
        text = screen_text(app)
        assert "\\u202eevil\\u202c" in text and "\\u2066x\\u2069" in text and "a\ufffdb" in text
        assert not any(c in text for c in "\u202e\u202c\u2066\u2069") and not any(0xD800 <= ord(c) < 0xE000 for c in text)


async def test_copy_answer_and_thinking_to_the_clipboard():
    app = WorkbenchApp(ScriptedEngine([script_from_text(THINKING, ANSWER)]))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        await pilot.press("f5")
        assert app.clipboard == ANSWER
        await pilot.press("f6")
        assert app.clipboard == THINKING


async def test_latex_source_is_one_key_away():
    app = WorkbenchApp(ScriptedEngine([script_from_text(THINKING, ANSWER)]))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert "\\boxed{42}" not in screen_text(app)
        await pilot.press("ctrl+l")
        await pilot.pause()
        text = screen_text(app)
        assert "The answer is \\boxed{42}." in text and "\\(12+30=42\\)" in text
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert "\\boxed{42}" not in screen_text(app)


async def test_focus_keys_and_palette_commands():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.press("f2")
        assert app.focused.id == "thinking"
        await pilot.press("f3")
        assert app.focused.id == "answer"
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Stop generation", "New chat", "Regenerate", "Pick a model", "Sampling settings",
                "Copy answer", "Copy thinking", "Focus thinking", "Focus answer"} <= titles


async def test_thinking_pane_follows_until_scrolled_up():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        view = app.query_one(ThinkingView)
        view.append("".join(f"line {i}\n" for i in range(200)))
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y > 0  # followed the stream
        view.scroll_home(animate=False)
        await pilot.pause()
        view.append("more\n" * 20)
        await pilot.pause()
        assert view.scroll_y == 0  # the user scrolled up: left alone
        view.scroll_end(animate=False)
        await pilot.pause()
        view.append("again\n" * 20)
        await pilot.pause()
        assert view.scroll_y == view.max_scroll_y  # back at the bottom: following again


async def test_thinking_pane_wraps_long_lines_and_rewraps_on_resize():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        view = app.query_one(ThinkingView)
        words = " ".join(f"w{i}" for i in range(300))
        for piece in (words[:100], words[100:], "\nnext"):
            view.append(piece)
        width = view.scrollable_content_region.width
        assert all(len(row) <= width for row in view._rows)
        assert " ".join(view._rows[:-1]).split() == words.split() and view._rows[-1] == "next"
        await pilot.resize_terminal(200, 30)
        await pilot.pause()
        assert view.scrollable_content_region.width > width
        assert " ".join(view._rows[:-1]).split() == words.split()


@pytest.mark.parametrize("line, width", [
    ("the quick brown fox jumps over the lazy dog " * 6, 17),
    ("x" * 95 + " tail words here", 20),  # a word longer than a row is cut
    ("  leading spaces and    runs   of   spaces  " * 3, 11),
    ("中文字符混合 wide 字符 " * 8, 9),  # two cells each
    ("a b", 1),
])
def test_wrapping_from_any_row_start_gives_the_rows_of_a_whole_wrap(line, width):
    from rich.cells import cell_len

    from workbench.tui.panes import wrap

    rows, starts = wrap(line, width)
    assert len(rows) == len(starts) > 1 and all(cell_len(r) <= width for r in rows)
    assert starts[0] == 0 and rows == [line[a:b].rstrip() for a, b in zip(starts, starts[1:] + [len(line)])]
    for k in range(len(rows)):
        assert wrap(line, width, starts[k]) == (rows[k:], starts[k:])


async def test_thinking_appends_rewrap_only_the_end_and_match_a_whole_rewrap(monkeypatch):
    """Appends rewrap the grown line from the row before its first changed character (a long
    paragraph is not rewrapped per chunk), LaTeX completing mid-line included."""
    import random

    from workbench.tui import panes
    from workbench.tui.panes import wrap

    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        view = app.query_one(ThinkingView)
        pieces = ["word ", "longer words ", "x" * 130, " ", "\\frac{1}{2}", " \\(x^2\\) ", "\\sqrt{9}", "中文 ",
                  "\n", "\n\n", "  ", "\\boxed{42}", "a"]
        for seed in range(30):
            rng = random.Random(seed)
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(5, 120)))
            view.clear()
            at = 0
            while at < len(text):
                size = rng.randint(1, 12)
                view.append(text[at:at + size])
                at += size
            streamed = (list(view._rows), list(view._row_start))
            view._rewrap_all()
            assert streamed == (view._rows, view._row_start), seed
            assert view.raw == text
        view.set_text("word " * 400)  # one long paragraph, ~20 rows
        calls = []
        monkeypatch.setattr(panes, "wrap", lambda line, width, start=0: calls.append(start) or wrap(line, width, start))
        view.append("more ")
        assert len(calls) == 1 and calls[0] >= len("word " * 400) - 2 * view._width  # its last two rows only


async def test_thinking_appends_redraw_the_rows_they_change_and_a_shorter_text_clears_the_rest():
    app = WorkbenchApp(ScriptedEngine())
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        view = app.query_one(ThinkingView)
        for piece in ("carry the one", " into the tens", "\nthen the hundreds", "\nand done"):
            view.append(piece)
            await pilot.pause()
        shown = screen_text(app)
        assert "carry the one into the tens" in shown and "then the hundreds" in shown and "and done" in shown
        view.set_text("short")
        await pilot.pause()
        shown = screen_text(app)
        assert "short" in shown and "hundreds" not in shown and "carry" not in shown


def test_status_line_redraws_twice_a_second_while_a_phase_streams_and_at_once_on_a_new_phase():
    from workbench.tui.panes import StatusLine

    now = [10.0]
    status = StatusLine()
    status.clock = lambda: now[0]
    status.memory_gb = lambda: 0.5
    status.refresh = lambda *a, **k: None  # not mounted: only the text matters here
    status.started()
    status.progress(5, 0)
    assert "thinking · 5 tok" in status.text.plain
    now[0] += 0.2
    status.progress(5, 0)
    assert "thinking · 5 tok" in status.text.plain  # counted, not drawn yet
    now[0] += 0.4
    status.progress(5, 0)
    assert "thinking · 15 tok" in status.text.plain
    now[0] += 0.1
    status.progress(0, 3)
    assert "answering" in status.text.plain and "answer 3 tok" in status.text.plain  # new phase: at once


@pytest.mark.parametrize("memory, shown", [(1.5, "mem 1.50 GB"), (None, None)])
async def test_the_status_line_shows_the_engines_memory_or_none(memory, shown):
    """The engine's process holds the model (the app's child with ProcessEngine): its memory, not
    the app's; an engine that does not say (remote) gets no figure rather than a wrong one."""
    gate = threading.Event()
    engine = ScriptedEngine([Script([Think(f"step {i}\n", 1) for i in range(40)], hold=gate)], rate=100)
    engine.memory = memory  # what its memory_gb() reports
    app = WorkbenchApp(engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await submit(pilot, app)
        status = app.query_one(StatusLine)
        await wait_for(pilot, lambda: "thinking ·" in status.text.plain)
        assert (shown in status.text.plain) if shown else ("mem " not in status.text.plain)
        gate.set()


async def test_streaming_thinking_does_not_lay_out_the_screen_per_chunk(monkeypatch):
    """A layout pass composes the whole screen (~15 ms at 160x48), and a stream brings ~10 chunks a
    second: growing thinking text and the hidden inspector's live summary must not ask for one."""
    from textual.screen import Screen

    layouts = []
    original = Screen._refresh_layout
    monkeypatch.setattr(Screen, "_refresh_layout", lambda self, *a, **k: (layouts.append(1), original(self, *a, **k)))
    gate = threading.Event()
    lines = [Think(f"step {i}: carry the {i % 10}\n", 1) for i in range(120)]
    app = WorkbenchApp(ScriptedEngine([Script(lines, hold=gate)], rate=100))  # ~12 chunks
    async with app.run_test(size=(160, 48)) as pilot:
        await submit(pilot, app)
        view = app.query_one(ThinkingView)
        await wait_for(pilot, lambda: "step 5:" in view.raw)
        layouts.clear()  # the turn's widgets are mounted by now
        await wait_for(pilot, lambda: "step 119:" in view.raw)
        await pilot.pause(0.6)  # a tick of the inspector's live summary
        assert len(layouts) <= 3  # e.g. the scrollbar appearing; not one per chunk (was ~15)
        assert view.scroll_y == view.max_scroll_y > 0  # and still following the stream
        assert "step 119:" in screen_text(app)
        gate.set()


async def test_the_engine_starts_once_the_turn_is_drawn_and_the_cursor_holds_still_meanwhile():
    """Laying out a new turn costs CPU that generation would otherwise have (an MLX step on the CPU
    uses every core): the engine starts after it, and a blinking cursor (a screen update twice a
    second) holds still while the engine works. Esc before the start is not lost."""
    from textual.widgets import Input

    from workbench.tui.panes import TurnView

    seen = []

    class Watching(ScriptedEngine):
        def generate(self, request):
            view = app.query(TurnView).last()
            seen.append((view.region.height, app.query_one("#prompt", Input).cursor_blink))
            return super().generate(request)

    held = Script([Think("t", 1)], hold=threading.Event())  # ends only when cancelled
    app = WorkbenchApp(Watching([script_from_text(THINKING, ANSWER, chunk=4), held], rate=500))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert seen == [(seen[0][0], False)] and seen[0][0] > 0  # on screen, cursor still, when it began
        assert app.query_one("#prompt", Input).cursor_blink  # blinking again after the turn
        await app.ask("Again?")
        app.action_stop()  # Esc before the engine has started (no refresh can come in between)
        await wait_for(pilot, lambda: done(app, 2))
        assert len(seen) == 2 and app.last.stats.finish_reason == "cancelled"


async def test_the_status_line_redraws_apart_from_the_streaming_pane(monkeypatch):
    """Textual composes the bounding box of one update's dirty regions: the status line (bottom)
    and a thinking row (top) in the same update would redraw every widget between them."""
    from textual import _compositor
    from textual.geometry import Region

    crops = []
    original = _compositor.Compositor.render_partial_update

    def recording(self):
        if self._dirty_regions:
            crops.append(Region.from_union(list(self._dirty_regions)))
        return original(self)

    monkeypatch.setattr(_compositor.Compositor, "render_partial_update", recording)
    gate = threading.Event()
    app = WorkbenchApp(ScriptedEngine([Script([Think("V", 1) for _ in range(200)], hold=gate)], rate=100))
    async with app.run_test(size=(160, 48)) as pilot:
        await submit(pilot, app)
        view = app.query_one(ThinkingView)
        await wait_for(pilot, lambda: len(view.raw) >= 20)
        crops.clear()
        await wait_for(pilot, lambda: len(view.raw) == 200)  # 1.8 s more: the status redraws ~3 times
        await pilot.pause(0.3)
        status, pane = app.query_one("#status").region, view.region
        assert any(c.overlaps(status) for c in crops) and any(c.overlaps(pane) for c in crops)
        assert not [c for c in crops if c.overlaps(status) and c.overlaps(pane)]
        gate.set()


async def test_a_long_answer_streams_into_segments_that_freeze():
    paragraphs = [f"Paragraph {i}: " + "word " * 60 + f"$x^{i % 10}$ end {i}." for i in range(3 * SEGMENT_CHARS // 300)]
    answer = "\n\n".join(paragraphs)
    app = WorkbenchApp(ScriptedEngine([script_from_text("t", answer, chunk=50)], rate=200))
    async with app.run_test(size=(120, 40)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app), timeout=30)
        frozen = list(app.query(FrozenMarkdown))
        assert len(frozen) >= 2 and len(app.query(Markdown)) == 1
        shown = "\n\n".join(f.source for f in frozen) + app.query(Markdown).last().source
        assert " ".join(shown.split()).replace(" ", "") == " ".join(
            to_unicode(answer, markdown=True).split()).replace(" ", "")  # nothing lost or doubled
        await wait_for(pilot, lambda: f"end {len(paragraphs) - 1}." in screen_text(app))  # followed to the end
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: all(f.region.height == 0 for f in frozen))  # source shown instead


@pytest.mark.skipif(not hasattr(__import__("os"), "getpriority") or __import__("sys").platform != "linux",
                    reason="per-thread nice values are a Linux feature")
async def test_the_app_steps_back_from_the_engine_while_open_and_restores_its_priority():
    import os

    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    app = WorkbenchApp(ScriptedEngine([script_from_text(THINKING, ANSWER)]))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        assert threading.get_native_id() == tid  # the test runs on the app's event loop thread
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(before + UI_NICE, 19)
    if os.geteuid() == 0:  # giving priority back needs the rights to raise it
        assert os.getpriority(os.PRIO_PROCESS, tid) == before


async def test_raw_html_in_an_answer_is_shown_as_written_in_the_pane_and_the_final_answer():
    """Markdown's raw HTML (`<div>`, comments) used to vanish from the answer pane, and
    `\\boxed{<script>…</script>}` showed differently in the pane and in the framed final answer."""
    first = "Intro <b>bold?</b> text.\n\n<div>hidden div</div>\n\n<!-- a comment -->\n\n"
    filler = "".join(f"Line {i} " + "word " * 50 + "\n\n" for i in range(2 * SEGMENT_CHARS // 250))
    answer = first + filler + "So \\boxed{<script>x</script>}"
    app = WorkbenchApp(ScriptedEngine([script_from_text("t", answer, chunk=40)], rate=400))
    async with app.run_test(size=(160, 200)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app), timeout=30)
        assert app.query(FrozenMarkdown)  # the first part was frozen (Rich), the rest is the live Markdown
        await pilot.pause()
        app.query_one("#answer").scroll_home(animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert "<b>bold?</b>" in text and "<div>hidden div</div>" in text and "<!-- a comment -->" in text
        app.query_one("#answer").scroll_end(animate=False)
        await pilot.pause()
        text = screen_text(app)
        assert "⟦<script>x</script>⟧" in text  # in the answer
        assert text.count("<script>x</script>") == 2  # and the same in the framed final answer


@pytest.fixture
def machine_24gb(monkeypatch):
    from workbench.models import recommend

    monkeypatch.setattr(recommend, "machine_memory", lambda: 24 * 10**9)
    monkeypatch.setattr(recommend, "free_disk", lambda path: 500 * 10**9)


async def test_the_first_screen_says_what_r1_nano_is_and_which_model_to_pull(machine_24gb):
    from workbench.models.recommend import fits_to_pull
    from workbench.tui.welcome import EXAMPLES, Welcome

    best = fits_to_pull({"r1-nano"})[0].entry.name
    app = WorkbenchApp(ScriptedEngine([script_from_text(THINKING, ANSWER)], name="r1-nano"))
    async with app.run_test(size=(120, 30)) as pilot:
        welcome = app.query_one(Welcome)
        await wait_for(pilot, lambda: welcome.best is not None)
        await pilot.pause()
        text = " ".join(screen_text(app).split())
        assert "r1-nano" in text and "1M-parameter" in text and "arithmetic" in text
        assert all(example in text for example in EXAMPLES)
        assert best in welcome.best and best in " ".join(screen_text(app).replace("│", " ").split())
        assert "ctrl+o" in welcome.best
        await submit(pilot, app)
        await wait_for(pilot, lambda: done(app))
        assert welcome.region.height == 0 and "1M-parameter" not in screen_text(app)  # gone once a turn is there


async def test_the_first_screen_does_not_wait_for_the_catalog(monkeypatch):
    from workbench.models import recommend
    from workbench.tui.welcome import Welcome

    gate = threading.Event()
    monkeypatch.setattr(recommend, "machine_memory", lambda: gate.wait(10) and 24 * 10**9)
    app = WorkbenchApp(ScriptedEngine([script_from_text(THINKING, ANSWER)]))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        assert "checking the catalog" in " ".join(screen_text(app).split())
        await submit(pilot, app)  # the app answers while the recommendation is still being worked out
        await wait_for(pilot, lambda: done(app))
        gate.set()
        await wait_for(pilot, lambda: app.query_one(Welcome).best is not None)

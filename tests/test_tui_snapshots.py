"""Snapshot tests (pytest-textual-snapshot) of the main screen mid-stream and after completion.

Numbers that depend on the clock are pinned: the status line's clock and memory meter are fixed,
and the scripted engine reports fixed Stats. Update after an intended change with
`.venv/bin/pytest tests/test_tui_snapshots.py --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

import threading

import pytest
from textual.widgets import Input

from workbench.engine.events import Answer, Stats, Think
from workbench.tui.app import WorkbenchApp
from workbench.tui.panes import StatusLine
from workbench.engine.scripted import Script, ScriptedEngine

THINKING = ("The user asks for 12+30. Add the ones: 2+0=2. Add the tens: 1+3=4.\n"
            "So \\(12+30=42\\). Check: \\(42-30=12\\), and \\(\\frac{84}{2}=42\\) too.\n")
ANSWER = "**12 + 30 = 42**\n\n- ones: 2 + 0 = 2\n- tens: 1 + 3 = 4\n\nThe answer is \\boxed{42}."
STATS = Stats(prompt_tokens=18, thinking_tokens=131, answer_tokens=84, time_to_first_token=0.31,
              thinking_time=2.9, answer_time=1.8, total_time=5.0, peak_memory_gb=0.42, finish_reason="stop",
              thinking_closed=True)


@pytest.fixture(autouse=True)
def fixed_meters(monkeypatch):
    monkeypatch.setattr(StatusLine, "clock", staticmethod(lambda: 100.0))
    monkeypatch.setattr(StatusLine, "memory_gb", staticmethod(lambda: 0.42))


def engine(hold=None):
    half = len(ANSWER) // 2
    events = [Think(THINKING, 131), Answer(ANSWER[:half], 40)]
    if hold is None:
        events.append(Answer(ANSWER[half:], 44))
    return ScriptedEngine([Script(events, hold=hold, stats=STATS)], name="r1-nano")


async def ask_and_wait(pilot, done) -> None:
    app = pilot.app
    app.query_one("#prompt", Input).cursor_blink = False  # a blinking cursor would make the snapshot flaky
    for _ in range(500):
        if app.ready:
            break
        await pilot.pause(0.02)
    app.query_one("#prompt", Input).value = "What is 12+30?"
    await pilot.press("enter")
    for _ in range(500):
        if done(app):
            break
        await pilot.pause(0.02)
    transcript = app.query_one("#answer")
    for _ in range(100):  # let the Markdown stream settle and the pane follow it to the end
        await pilot.pause(0.05)
        if transcript.scroll_y >= transcript.max_scroll_y:
            break
    await pilot.pause(0.1)


def test_main_screen_mid_stream(snap_compare):
    hold = threading.Event()
    app = WorkbenchApp(engine(hold))

    async def run_before(pilot):
        await ask_and_wait(pilot, lambda app: any("ones" in m.source for m in app.query("Markdown")))

    try:
        assert snap_compare(app, terminal_size=(110, 28), run_before=run_before)
    finally:
        hold.set()


def test_main_screen_after_completion(snap_compare):
    app = WorkbenchApp(engine())

    async def run_before(pilot):
        await ask_and_wait(pilot, lambda app: app.last is not None and app.turn_view.finished)

    assert snap_compare(app, terminal_size=(110, 28), run_before=run_before)


def test_narrow_screen_after_completion(snap_compare):
    app = WorkbenchApp(engine())

    async def run_before(pilot):
        await ask_and_wait(pilot, lambda app: app.last is not None and app.turn_view.finished)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_first_screen(snap_compare, monkeypatch):
    """What a first-time user sees: the welcome in the Answer pane (a fixed 24 GB machine)."""
    from workbench.models import recommend

    monkeypatch.setattr(recommend, "machine_memory", lambda: 24 * 10**9)
    monkeypatch.setattr(recommend, "free_disk", lambda path: 500 * 10**9)
    app = WorkbenchApp(engine())

    async def run_before(pilot):
        pilot.app.query_one("#prompt", Input).cursor_blink = False
        for _ in range(500):
            if pilot.app.ready and pilot.app.query_one("#welcome").best is not None:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(110, 28), run_before=run_before)

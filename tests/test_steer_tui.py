"""Steering in the app (pilot tests against the scripted engine): answer now, the thinking settings,
edit a turn's thinking and continue, extend, fork; each saved as a branch of the session."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, Collapsible, Input, TextArea

from tui_pilot import ask, screen_text, submit, wait_for
from workbench.engine.events import BUDGET_MESSAGE, WAIT_TEXT, Answer, Message, Think
from workbench.engine.protocol import Capabilities
from workbench.engine.scripted import Script, ScriptedEngine, script_from_text
from workbench.sessions import Store
from workbench.tui.app import WorkbenchApp
from workbench.tui.panes import ThinkingView
from workbench.tui.steer_screens import EditThinkingScreen, ThinkingSettings, ThinkingSettingsScreen

pytestmark = pytest.mark.anyio

THINKING = "12+30: ones 2+0=2, tens 1+3=4. So 42."
ANSWER = "The answer is \\boxed{42}."


def stored_turns(app) -> list[dict]:
    return app.sessions_ui.store.session(app.sessions_ui.session_id)["turns"]


def settled(app, responses: int) -> bool:
    return (len(app.responses) >= responses and app.turn_view is not None and app.turn_view.finished
            and app.sessions_ui.recorder is not None and app.sessions_ui.recorder.saved)


async def test_answer_now_cuts_the_thinking_marks_it_and_the_answer_streams():
    slow = Script([Think("step. ", 1) for _ in range(5000)] + [Answer("42", 1)])  # 25 s unless cut
    app = WorkbenchApp(ScriptedEngine([slow], rate=200))
    async with app.run_test(size=(120, 30)) as pilot:
        await submit(pilot, app)
        await wait_for(pilot, lambda: "step." in app.query_one(ThinkingView).raw)
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: settled(app, 1))
        last = app.last
        assert last.stats.thinking_cut == "answer_now" and last.answer == "42"
        assert last.thinking.endswith(BUDGET_MESSAGE) and last.thinking.count("step.") < 5000
        pane = app.query_one(ThinkingView)
        assert pane.raw == last.thinking and "⟦answered now⟧" in "\n".join(pane._rows)  # marked, not in the text
        [turn] = [t for t in stored_turns(app) if t["role"] == "assistant"]
        assert turn["thinking"] == last.thinking and turn["stats"]["steered"][0]["kind"] == "answer_now"
        assert turn["stats"]["steered"][0]["at"] == len(last.thinking) - len(BUDGET_MESSAGE)


async def test_the_thinking_settings_are_validated_saved_and_sent():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=2)], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.ready)
        await pilot.press("f11")
        await wait_for(pilot, lambda: isinstance(app.screen, ThinkingSettingsScreen))
        screen = app.screen
        screen.query_one("#effort", Input).value = "huge"
        await pilot.click("#save")
        assert "not one of" in str(screen.query_one("#problem").render()) and app.screen is screen
        screen.query_one("#effort", Input).value = ""
        screen.query_one("#budget", Input).value = "5"
        screen.query_one("#keep_thinking", Checkbox).value = True
        screen.query_one("#budget", Input).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not screen)
        assert app.thinking_settings == ThinkingSettings(budget=5, keep_thinking=True)
        await ask(pilot, app)
        await wait_for(pilot, lambda: settled(app, 1))
        request = engine.requests[0]
        assert request.max_thinking_tokens == 5 and request.keep_thinking
        assert app.last.stats.thinking_cut == "budget" and "⟦budget reached⟧" in "\n".join(app.thinking._rows)
        assert "budget reached" in str(app.status.render())


def answered_then(continued: str) -> tuple[ScriptedEngine, WorkbenchApp]:
    """An app whose engine answers THINKING/ANSWER, then continues with `continued` as new thinking."""
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=4), script_from_text(continued, ANSWER)],
                            rate=2000)
    return engine, WorkbenchApp(engine)


async def test_edit_the_thinking_and_continue_makes_a_branch_beside_the_turn():
    engine, app = answered_then(" then 42.")
    async with app.run_test(size=(120, 36)) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: settled(app, 1))
        first = app.last
        await pilot.press("f12")
        await wait_for(pilot, lambda: isinstance(app.screen, EditThinkingScreen))
        editor = app.screen.query_one(TextArea)
        assert editor.text == THINKING
        editor.text = "12+30: tens first"
        await pilot.press("enter")
        await wait_for(pilot, lambda: settled(app, 2))
        request = engine.requests[-1]
        assert request.continue_thinking == "12+30: tens first"
        assert request.messages == (Message("user", "What is 12+30?"),)  # the turn's prompt, not twice
        assert app.last.thinking == "12+30: tens first then 42." and len(app.branch) == 1
        assert app.history == [Message("user", "What is 12+30?"), Message("assistant", ANSWER, app.last.thinking)]
        turns = stored_turns(app)
        assert [t["role"] for t in turns] == ["user", "assistant", "assistant"]  # no second prompt row
        assert turns[2]["parent_id"] == turns[0]["id"] == first.prompt_turn
        assert turns[2]["thinking"] == "12+30: tens first then 42."


async def test_extend_after_a_response_goes_on_from_its_thinking_with_wait():
    engine, app = answered_then(", check: 42.")
    async with app.run_test(size=(120, 36)) as pilot:
        await ask(pilot, app)
        await wait_for(pilot, lambda: settled(app, 1))
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: settled(app, 2))
        assert engine.requests[-1].continue_thinking == THINKING + WAIT_TEXT
        assert app.last.thinking == THINKING + WAIT_TEXT + ", check: 42."


async def test_fork_from_an_earlier_turn_starts_a_branch_and_keeps_the_old_one_saved():
    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=4)], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await ask(pilot, app, "one")
        await wait_for(pilot, lambda: settled(app, 1))
        await ask(pilot, app, "two")
        await wait_for(pilot, lambda: settled(app, 2))
        await pilot.press("ctrl+f")  # the last turn is selected: nothing to fork
        assert len(app.branch) == 2
        first = app.branch[0]
        app.set_focus(app.query(Collapsible).first().query_one("CollapsibleTitle"))  # select the first turn
        await pilot.press("ctrl+f")
        await wait_for(pilot, lambda: len(app.branch) == 1)
        assert app.history == [Message("user", "one"), Message("assistant", ANSWER, THINKING)]
        await ask(pilot, app, "three")
        await wait_for(pilot, lambda: settled(app, 3))
        assert engine.requests[-1].messages[-3:] == (Message("user", "one"), Message("assistant", ANSWER, THINKING),
                                                     Message("user", "three"))
        turns = stored_turns(app)
        assert [t["content"] for t in turns if t["role"] == "user"] == ["one", "two", "three"]  # "two" kept
        three = [t for t in turns if t["content"] == "three"][0]
        assert three["parent_id"] == first.response_turn


async def test_an_engine_that_cannot_steer_says_so_and_sends_nothing():
    class Plain(ScriptedEngine):
        capabilities = Capabilities()

    engine = Plain([script_from_text(THINKING, ANSWER, chunk=4)], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(120, 30)) as pilot:
        await ask(pilot, app)
        await pilot.press("ctrl+y")
        app.thinking_settings = ThinkingSettings(budget=3)
        await submit(pilot, app, "again")
        await pilot.pause(0.2)
        assert len(engine.requests) == 1 and engine.requests[0].max_thinking_tokens is None


async def test_what_at_budget_b_cuts_the_selected_turns_thinking_answers_beside_the_full_one_and_saves_nothing():
    from workbench.tui.steer_screens import AskBudgetScreen, AtBudgetScreen

    engine = ScriptedEngine([script_from_text(THINKING, ANSWER, chunk=4), script_from_text(THINKING, ANSWER, chunk=4),
                             script_from_text(" and on", "At 5: \\boxed{40}\x1b[2J")], rate=2000)
    app = WorkbenchApp(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        await ask(pilot, app, "one")
        await wait_for(pilot, lambda: settled(app, 1))
        await ask(pilot, app, "two")
        await wait_for(pilot, lambda: settled(app, 2))
        stored = len(stored_turns(app))
        app.set_focus(app.query(Collapsible).first().query_one("CollapsibleTitle"))  # select the first turn
        await pilot.press("shift+f12")
        await wait_for(pilot, lambda: isinstance(app.screen, AskBudgetScreen))
        tokens = app.branch[0].stats.thinking_tokens
        await wait_for(pilot, lambda: f"Its thinking: {tokens:,} tokens." in screen_text(app))
        app.screen.query_one(Input).value = str(tokens)  # its whole thinking: the answer it gave
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, AskBudgetScreen))
        assert len(engine.requests) == 2 and not isinstance(app.screen, AtBudgetScreen)
        await pilot.press("shift+f12")
        await wait_for(pilot, lambda: isinstance(app.screen, AskBudgetScreen))
        app.screen.query_one(Input).value = "9" * 5000  # beyond int()'s digit limit: said, not a crash
        await pilot.press("enter")
        await wait_for(pilot, lambda: "A number of thinking tokens (0 to 999,999,999)." in screen_text(app))
        app.screen.query_one(Input).value = "5"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AtBudgetScreen) and app.screen.ended)
        request = engine.requests[-1]
        assert request.continue_thinking == THINKING and request.max_thinking_tokens == 5
        assert request.sampling == engine.requests[0].sampling  # the turn's own request, its thinking cut
        assert request.messages == (Message("user", "one"),)  # the selected turn's prompt, not the last one
        screen = app.screen
        assert screen.budget_answer == "At 5: \\boxed{40}\x1b[2J" and screen.after_cut == BUDGET_MESSAGE
        await wait_for(pilot, lambda: "At 5: \\boxed{40}\\x1b[2J" in screen_text(app))  # escaped
        text = screen_text(app)
        assert "At a budget of 5 thinking tokens" in text and "\x1b" not in text
        assert "The full response" in text and "The answer is \\boxed{42}." in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AtBudgetScreen))
        assert len(stored_turns(app)) == stored and len(app.branch) == 2 and app.last.prompt == "two"  # nothing saved

"""Steering the thinking in the app: the thinking settings (budget, minimum, effort, keep earlier
thinking, loop rescue) and the editor of a turn's thinking (Enter continues from the edit)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from workbench.engine.events import EFFORTS


@dataclass(frozen=True)
class ThinkingSettings:
    """What the app asks of the thinking for each response (ChatRequest's steering fields)."""

    budget: int | None = None  # max_thinking_tokens
    minimum: int | None = None  # min_thinking_tokens
    effort: str | None = None
    keep_thinking: bool = False
    answer_on_loop: bool = False

    def request_fields(self) -> dict:
        return {"max_thinking_tokens": self.budget, "min_thinking_tokens": self.minimum, "effort": self.effort,
                "keep_thinking": self.keep_thinking, "answer_on_loop": self.answer_on_loop}

    @property
    def steers(self) -> bool:
        return self.budget is not None or bool(self.minimum or self.effort or self.answer_on_loop)


DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} #dialog {{ width: 72; height: auto; max-height: 90%; border: thick $primary; background: $surface; padding: 1 2; }}
{name} #title {{ text-style: bold; margin-bottom: 1; }}
{name} .field {{ height: 3; }}
{name} .field Label {{ width: 22; padding: 1 0; }}
{name} .field Input {{ width: 1fr; }}
{name} #problem {{ color: $error; height: auto; }}
{name} #buttons {{ height: auto; align: right middle; }}
"""


class ThinkingSettingsScreen(ModalScreen[ThinkingSettings | None]):
    """Budget, minimum and effort (empty: none), keep earlier thinking, answer on loops."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ThinkingSettingsScreen")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, settings: ThinkingSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(id="dialog"):
            yield Label("Thinking (empty: no limit)", id="title")
            for name, label, value in (("budget", "Budget (tokens)", s.budget), ("minimum", "Minimum (tokens)", s.minimum)):
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input("" if value is None else str(value), type="integer", id=name, placeholder="none")
            with Horizontal(classes="field"):
                yield Label("Effort")
                yield Input(s.effort or "", id="effort", placeholder=" | ".join(EFFORTS))
            yield Checkbox("keep earlier thinking in the prompt", s.keep_thinking, id="keep_thinking")
            yield Checkbox("a repetition loop answers now", s.answer_on_loop, id="answer_on_loop")
            yield Static("", id="problem", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")

    def read(self) -> ThinkingSettings:
        """The form's settings; ValueError says which field is wrong."""
        numbers = {}
        for name, label in (("budget", "Budget"), ("minimum", "Minimum")):
            text = self.query_one(f"#{name}", Input).value.strip()
            if text and (not text.isdigit()):
                raise ValueError(f"{label}: '{text}' is not a number of tokens (0 or more)")
            numbers[name] = int(text) if text else None
        effort = self.query_one("#effort", Input).value.strip().lower() or None
        if effort is not None and effort not in EFFORTS:
            raise ValueError(f"Effort: '{effort}' is not one of {', '.join(EFFORTS)}")
        return ThinkingSettings(numbers["budget"], numbers["minimum"], effort,
                                self.query_one("#keep_thinking", Checkbox).value,
                                self.query_one("#answer_on_loop", Checkbox).value)

    def save(self) -> None:
        try:
            self.dismiss(self.read())
        except ValueError as e:
            self.query_one("#problem", Static).update(str(e))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)


class EditThinkingScreen(ModalScreen[str | None]):
    """A turn's thinking in an editor: Enter generates again from the edited thinking (thinking still
    open), Esc leaves it as it was."""

    DEFAULT_CSS = DIALOG_CSS.format(name="EditThinkingScreen") + """
    EditThinkingScreen #dialog { width: 90%; height: 80%; }
    EditThinkingScreen TextArea { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"),
                Binding("enter", "continue_from_edit", "Continue from here", priority=True)]

    def __init__(self, thinking: str) -> None:
        super().__init__()
        self.thinking = thinking

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Edit the thinking: Enter continues from the end of it (shift+enter: new line)",
                        id="title")
            yield TextArea(self.thinking, id="thinking-editor", soft_wrap=True)

    def on_mount(self) -> None:
        editor = self.query_one(TextArea)
        editor.focus()
        editor.move_cursor(editor.document.end)

    def action_continue_from_edit(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def key_shift_enter(self) -> None:
        self.query_one(TextArea).insert("\n")


class AskBudgetScreen(ModalScreen[int | None]):
    """How many thinking tokens: "what would this turn have answered had its thinking stopped there?\""""

    DEFAULT_CSS = DIALOG_CSS.format(name="AskBudgetScreen")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, thinking_tokens: int | None) -> None:
        super().__init__()
        self.thinking_tokens = thinking_tokens  # of the turn's whole thinking, when known

    def compose(self) -> ComposeResult:
        known = f"Its thinking: {self.thinking_tokens:,} tokens. " if self.thinking_tokens is not None else ""
        with Vertical(id="dialog"):
            yield Label("What would it have answered at a thinking budget of …", id="title", markup=False)
            yield Label(f"{known}Enter asks the model; nothing is saved.", markup=False)
            with Horizontal(classes="field"):
                yield Label("Budget (tokens)")
                yield Input(type="integer", id="at-budget", placeholder="e.g. 64")
            yield Static("", id="problem", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text.isdigit() or len(text) > 9:  # int() refuses over 4,300 digits; no thinking is 10^9 tokens
            self.query_one("#problem", Static).update("A number of thinking tokens (0 to 999,999,999).")
            return
        self.dismiss(int(text))


class AtBudgetScreen(ModalScreen):
    """A turn's answer had its thinking stopped at B tokens, beside its full response. The engine cuts the
    turn's thinking at B (from its KV cache), writes its budget message and `</think>`, and the model
    answers; nothing is saved."""

    BINDINGS = [Binding("escape", "close", "Close")]
    DEFAULT_CSS = """
    AtBudgetScreen { background: $background 90%; }
    AtBudgetScreen #prompt-line { color: $accent; text-style: bold; padding: 0 1; height: auto; }
    AtBudgetScreen #columns { height: 1fr; }
    AtBudgetScreen .side { width: 1fr; height: 1fr; border: round $primary 60%; padding: 0 1; }
    AtBudgetScreen .thought { color: $text-muted; margin-bottom: 1; }
    """

    def __init__(self, prompt: str, thinking: str, answer: str, budget: int, thinking_tokens: int | None,
                 job=None) -> None:
        super().__init__()
        self.prompt, self.thinking, self.answer, self.budget = prompt, thinking, answer, budget
        self.thinking_tokens, self.job = thinking_tokens, job
        self.budget_answer, self.after_cut, self.ended, self.error = "", "", False, None

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll

        from workbench.terminal import printable

        yield Static(Text("› " + printable(self.prompt)), id="prompt-line")
        with Horizontal(id="columns"):
            left = VerticalScroll(classes="side", id="at-budget-side")
            left.border_title = f"At a budget of {self.budget:,} thinking tokens"
            with left:
                yield Static("", classes="thought", id="cut-note", markup=False)
                yield Static(Text("generating …"), id="budget-answer", markup=False)
            right = VerticalScroll(classes="side", id="full-side")
            tokens = f" ({self.thinking_tokens:,} thinking tokens)" if self.thinking_tokens is not None else ""
            right.border_title = f"The full response{tokens}"
            with right:
                yield Static(Text(printable(self.thinking)), classes="thought", markup=False)
                yield Static(Text(printable(self.answer)), id="full-answer", markup=False)

    def update(self, after_cut: str, answer: str, ended: bool = False, error: str | None = None) -> None:
        """What the budget-B response wrote so far (the engine's cut text, then the answer)."""
        from workbench.terminal import printable

        self.after_cut, self.budget_answer, self.ended, self.error = after_cut, answer, ended, error
        if not self.is_attached:
            return
        note = f"Its thinking (right), cut after the first {self.budget:,} tokens, then: {after_cut}"
        self.query_one("#cut-note", Static).update(Text(printable(note)))
        text = answer + ("" if ended else " …") + (f"\n\n(failed: {error})" if error else "")
        self.query_one("#budget-answer", Static).update(Text(printable(text)))

    def action_close(self) -> None:
        if self.job is not None and not self.ended:
            self.job.cancel()
        self.dismiss()

"""A compare session side by side: one column per variant with its stats, markers, thinking and answer.

`workbench compare` saves its runs as a "compare" session; reopening one from the sessions sidebar
shows this screen (Esc closes it).
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from workbench.terminal import printable


def column_summary(turn: dict) -> str:
    stats, ins = turn.get("stats") or {}, turn.get("inspection") or {}
    lines = [f"{turn.get('model') or '?'} · {turn.get('status')}"]
    if "thinking_tokens" in stats:
        lines.append(f"thinking {stats['thinking_tokens']:,} · answer {stats.get('answer_tokens', 0):,} tokens")
    if "generation_tps" in stats:
        lines.append(f"{stats['generation_tps']:.1f} tok/s")
    counts = (ins.get("markers") or {}).get("counts") or {}
    lines.append("markers: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"))
    lines.append(f"steps: {len(ins.get('steps') or [])}")
    if (ins.get("language") or {}).get("flagged"):
        lines.append("LANGUAGE MIXING")
    if (ins.get("loops") or {}).get("loop"):
        lines.append("REPETITION LOOP")
    consistent = (ins.get("consistency") or {}).get("consistent")
    if consistent is not None:
        lines.append("answer matches thinking" if consistent else "ANSWER DIFFERS from thinking")
    return "\n".join(printable(line) for line in lines)


class CompareScreen(ModalScreen):
    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = """
    CompareScreen { background: $background 90%; }
    CompareScreen #columns { height: 1fr; }
    CompareScreen .variant { width: 1fr; height: 1fr; border: round $primary 60%; padding: 0 1; }
    CompareScreen .summary { color: $text-muted; margin-bottom: 1; }
    CompareScreen .thought { color: $text-muted; margin-bottom: 1; }
    CompareScreen .prompt { color: $accent; text-style: bold; padding: 0 1; }
    """

    def __init__(self, session: dict) -> None:
        super().__init__()
        self.session = session

    def compose(self):
        turns = self.session["turns"]
        prompt = next((t["content"] for t in turns if t["role"] == "user"), "")
        yield Static(Text("› " + printable(prompt)), classes="prompt")
        with Horizontal(id="columns"):
            for t in (t for t in turns if t["role"] == "assistant"):
                column = VerticalScroll(classes="variant")
                # a Text: a title is markup, and a model's name or label is untrusted
                column.border_title = Text(printable(t.get("label") or t.get("model") or "response"))
                with column:
                    yield Static(Text(column_summary(t)), classes="summary", markup=False)
                    yield Static(Text(printable(t["thinking"])), classes="thought", markup=False)
                    yield Static(Text(printable(t["content"])), classes="answer", markup=False)
        yield Footer()


class CompareSetup(ModalScreen):
    """Which variants to run the prompt on: other models, other temperatures, several samples (each field
    comma-separated; empty means the current one). Dismisses with the variant list of
    `workbench.commands.compare.variants`, or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    CompareSetup { align: center middle; }
    CompareSetup #dialog { width: 72; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    CompareSetup #title { text-style: bold; margin-bottom: 1; }
    CompareSetup .field { height: 3; }
    CompareSetup .field Label { width: 16; padding: 1 0; }
    CompareSetup .field Input { width: 1fr; }
    CompareSetup #problem { color: $error; height: auto; }
    """
    FIELDS = (("models", "Models", "names or folders, e.g. r1-nano, my-model"),
              ("temps", "Temperatures", "e.g. 0.2, 0.8"), ("samples", "Samples", "responses per variant: 1"),
              ("seed", "First seed", "samples use seeds S, S+1, ..."))

    def __init__(self, prompt: str, model: str | None, adapter: str | None) -> None:
        super().__init__()
        self.prompt, self.model, self.adapter = prompt, model, adapter

    def compose(self):
        from textual.containers import Vertical
        from textual.widgets import Input, Label

        with Vertical(id="dialog"):
            yield Label(Text("Compare: " + printable(self.prompt.splitlines()[0][:50])), id="title")
            for name, label, hint in self.FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label)
                    yield Input(id=name, placeholder=hint)
            yield Static("Enter runs them one after another (Esc stops); the results open side by side.",
                         markup=False)
            yield Static("", id="problem", markup=False)

    def read(self) -> list[dict]:
        """The variants; ValueError says what is wrong with the form."""
        from textual.widgets import Input

        from workbench.sessions.compare import variants

        def field(name):
            return [x.strip() for x in self.query_one(f"#{name}", Input).value.split(",") if x.strip()]

        try:
            temps = [float(t) for t in field("temps")] or None
            samples = int((field("samples") or ["1"])[0])
            seed = int(field("seed")[0]) if field("seed") else None
        except ValueError as e:
            raise ValueError(f"not a number: {str(e).split(': ')[-1]}") from None
        if any(t < 0 for t in temps or []) or samples < 1 or samples > 64:
            raise ValueError("temperatures are >= 0 and samples 1 to 64")
        todo = variants(field("models") or [self.model], [self.adapter] if self.adapter else None, temps,
                        samples, seed)
        if len(todo) < 2:
            raise ValueError("two or more variants, please: several models or temperatures, or samples >= 2")
        return todo

    def on_input_submitted(self, event) -> None:
        event.stop()
        try:
            todo = self.read()
        except ValueError as e:
            self.query_one("#problem", Static).update(str(e))
            return
        self.dismiss(todo)

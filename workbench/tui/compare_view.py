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

from workbench.tui.safe import clean


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
    return "\n".join(clean(line) for line in lines)


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
        yield Static(Text("› " + clean(prompt)), classes="prompt")
        with Horizontal(id="columns"):
            for t in (t for t in turns if t["role"] == "assistant"):
                column = VerticalScroll(classes="variant")
                column.border_title = clean(t.get("label") or t.get("model") or "response")
                with column:
                    yield Static(Text(column_summary(t)), classes="summary", markup=False)
                    yield Static(Text(clean(t["thinking"])), classes="thought", markup=False)
                    yield Static(Text(clean(t["content"])), classes="answer", markup=False)
        yield Footer()

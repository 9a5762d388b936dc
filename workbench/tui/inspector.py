"""The inspector panel: chain-of-thought metrics of the current response, its steps, marker jumps.

Live while streaming (marker counts, loop and language flags from the recorder's incremental
inspector, redrawn twice a second while the panel is open), complete when the response ends (the
stored inspection, shown when the recorder says it is saved).
Picking a step, or the next/previous-marker keys, scrolls the Thinking pane there.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from workbench.inspect.markers import PATTERN
from workbench.tui.panes import ThinkingView
from workbench.terminal import printable


class InspectorPanel(Vertical):
    DEFAULT_CSS = """
    InspectorPanel { width: 40; height: 1fr; display: none; border: round $secondary 60%; }
    InspectorPanel.open { display: block; }
    InspectorPanel #inspector-summary { height: auto; padding: 0 1; }
    InspectorPanel OptionList { height: 1fr; border: none; }
    """

    def __init__(self) -> None:
        super().__init__(id="inspector")
        self.border_title = "Inspector"
        self.inspection: dict | None = None
        self.thinking = ""
        self.live = None  # a Recorder while its response streams
        self._live_summary: str | None = None  # what the summary shows while it streams
        self.ui = None
        self.marker_index = -1
        self._timer = None  # the live summary's, made paused on mount

    def compose(self):
        yield Static("No response yet.", id="inspector-summary", markup=False)
        yield OptionList(id="inspector-steps")

    class Saved(Message):
        """The live recorder has everything in the store (posted from the thread that finished it)."""

    def on_mount(self) -> None:
        # Runs only while the panel is open on a streaming response: each tick wakes the app, and
        # on a 2-core machine every wake-up is taken from generation.
        self._timer = self.set_interval(0.5, self._tick, pause=True)

    # ---- content ---------------------------------------------------------------------------------
    def watch(self, recorder, ui=None) -> None:
        self.live, self.ui, self.inspection, self.marker_index = recorder, ui, None, -1
        self.query_one("#inspector-steps", OptionList).clear_options()
        self._tick()

    def on_inspector_panel_saved(self, message: Saved) -> None:
        self._tick()

    def _tick(self) -> None:
        recorder = self.live
        if recorder is not None and recorder.saved:  # finished: show the stored inspection
            self.live = None
            if self.ui is not None:
                self.ui.finished(recorder)
        live = self.live is not None and self.has_class("open")
        if self._timer is not None and live:
            self._timer.resume()
        elif self._timer is not None:
            self._timer.pause()
        if not live:
            return  # hidden: Static.update would still lay out the whole screen
        ins = recorder.inspector
        counts: dict[str, int] = {}
        for _, _, kind in list(ins.markers.markers):
            counts[kind] = counts.get(kind, 0) + 1
        lines = ["streaming …", "markers: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")]
        if ins.loop:
            lines.append("REPETITION LOOP")
        text = "\n".join(lines)
        if text != self._live_summary:  # each update is a layout pass of the whole screen
            self._live_summary = text
            self.query_one("#inspector-summary", Static).update(Text(text))

    def set_class_open(self, open_: bool) -> None:
        self.set_class(open_, "open")
        self._tick()  # while hidden the live summary was not kept up to date
        for view in self.app.query(ThinkingView):
            view.highlight = PATTERN if open_ else None  # reflection markers, highlighted while open
            view.refresh()

    def show(self, inspection: dict | None, thinking: str, answer: str = "") -> None:
        """A finished response's inspection (computed here if it was not stored, e.g. interrupted; its
        o200k_base counts once the app has loaded that table in the background)."""
        if inspection is None and (thinking or answer):
            from workbench.inspect import inspect_text

            inspection = inspect_text("", thinking, answer)
        elif inspection is not None:
            from workbench.inspect.tokens import with_o200k

            with_o200k(inspection.get("tokens") or {}, thinking, answer, load=False)
        self.live, self.inspection, self.thinking, self.marker_index = None, inspection, thinking, -1
        self._live_summary = None
        self.query_one("#inspector-summary", Static).update(Text(summary_lines(inspection)))
        steps = self.query_one("#inspector-steps", OptionList)
        steps.clear_options()
        for i, step in enumerate((inspection or {}).get("steps", [])):
            tag = f"[{step['marker']}] " if step.get("marker") else ""
            steps.add_option(Option(Text(f"{i + 1:>3}. {tag}{printable(step['title'])}"), id=str(step["start"])))

    # ---- navigation ------------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#inspector-steps")
    def step_picked(self, event: OptionList.OptionSelected) -> None:
        scroll_thinking_to(self.app.thinking, int(event.option.id))

    def markers(self) -> list:
        return ((self.inspection or {}).get("markers") or {}).get("positions") or []

    def jump_marker(self, thinking_view, direction: int) -> None:
        markers = self.markers()
        if not markers:
            self.app.notify("No reflection markers in this thinking.", markup=False, timeout=2)
            return
        self.marker_index = (self.marker_index + direction) % len(markers)
        start, end, kind = markers[self.marker_index]
        scroll_thinking_to(thinking_view, start)
        word = printable(thinking_view.raw[start:end])
        self.app.notify(f"{kind}: “{word}” ({self.marker_index + 1}/{len(markers)})", markup=False, timeout=2)


def summary_lines(ins: dict | None) -> str:
    if not ins:
        return "No inspection."
    tokens = ins.get("tokens", {})
    out = []
    if tokens.get("thinking") is not None:
        out.append(f"tokens: thinking {tokens['thinking']:,}, answer {tokens['answer']:,}")
    if tokens.get("thinking_o200k") is not None:
        out.append(f"o200k: thinking {tokens['thinking_o200k']:,}, answer {tokens['answer_o200k']:,}")
    elif tokens.get("note"):
        out.append(tokens["note"])
    if tokens.get("thinking_share") is not None:
        out.append(f"thinking share: {tokens['thinking_share']:.0%}")
    cost = tokens.get("cost") or {}
    for name, usd in (cost.get("hosted_usd") or {}).items():
        out.append(f"  {name}: ${usd:.4f}")
    if cost:
        out.append(f"  local: {cost.get('local_wh', 0):.2f} Wh, ${cost.get('local_usd', 0):.4f}")
    counts = (ins.get("markers") or {}).get("counts") or {}
    out.append("markers: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"))
    out.append(f"steps: {len(ins.get('steps') or [])}")
    lang = ins.get("language") or {}
    if lang:
        flag = "  MIXING" if lang.get("flagged") else ""
        out.append(f"other scripts: {lang.get('other_share', 0):.0%}{flag}")
    loops = ins.get("loops") or {}
    out.append("repetition: " + ("LOOP" if loops.get("loop") else f"{loops.get('repeated_ngrams', 0)} repeated 8-grams"))
    c = ins.get("consistency") or {}
    if c.get("consistent") is not None:
        out.append("answer: " + ("matches the thinking" if c["consistent"] else
                                 f"DIFFERS ({c['thinking_answer']} vs {c['final_answer']})"))
    return "\n".join(printable(line) for line in out)


def scroll_thinking_to(view, offset: int) -> None:
    """Scroll the Thinking pane so the character at `offset` of its text is at the top."""
    raw = view.raw
    offset = max(0, min(offset, len(raw)))
    line = raw.count("\n", 0, offset)
    column = offset - (raw.rfind("\n", 0, offset) + 1)
    starts = getattr(view, "_row_start", None) or [0]
    width = max(1, getattr(view, "_width", 1) or 1)
    row = (starts[line] if line < len(starts) else line) + column // width
    view.scroll_to(y=row, animate=False)

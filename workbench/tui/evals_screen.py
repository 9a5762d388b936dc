"""The Evals screen: the loaded model's report cards, a budget sweep's curve (accuracy against thinking
tokens) and its points; and a sweep launched from here, watched as it runs.

A sweep is `workbench eval --model <this model> ... --progress-json` in its own process
(`eval/launch.py`). Its progress lines are read on a thread worker of the app (so leaving the screen
leaves the eval going), checked by `RunningSweep`, and drawn as a running curve. Stop interrupts the
eval as Ctrl-C does: the sample in flight is dropped, the rest is kept for `--resume`. Everything read
from a card or the progress stream is untrusted: `eval/curve.py` and `RunningSweep` check and escape it.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from workbench.eval.card import suite_name
from workbench.eval.launch import LaunchedEval, RunningSweep, suite_of
from workbench.terminal import printable
from workbench.tui.messages import EvalProgress

POLL = 0.25  # seconds between reads of the progress file
RUNNING = "running"  # the option of the sweep in progress
MAX_PLOTTED = 64  # a card's points drawn at most (a hostile card may hold millions)


@dataclass
class EvalRun:
    """A sweep this app launched: its process, what its progress said so far, how it ended."""

    launched: LaunchedEval
    model: str
    before: set = field(default_factory=set)  # the model's card paths when it started
    sweep: RunningSweep = field(default_factory=RunningSweep)
    bad_lines: int = 0  # progress lines that were not JSON objects
    returncode: int | None = None
    stop_requested: bool = False

    @property
    def running(self) -> bool:
        return self.returncode is None

    def take(self, message: EvalProgress) -> None:
        for row in message.rows:
            self.sweep.add(row)
        self.bad_lines = message.bad
        if message.returncode is not None:
            self.returncode = message.returncode

    def status(self) -> str:
        parts = [f"sweep on {printable(suite_of(self.launched.arguments))[:40]}: {self.sweep.line()}"]
        skipped = self.bad_lines + self.sweep.bad
        if skipped:
            parts.append(f"{skipped} unreadable progress lines skipped")
        if self.returncode is not None:
            parts.append("finished" if self.returncode == 0 else f"ended (exit {self.returncode})")
        elif self.stop_requested:
            parts.append("stopping …")
        return " · ".join(parts)


def follow_eval(app, run: EvalRun) -> None:
    """On a thread worker: post the new progress lines until the process ends (then one last read)."""
    from textual.worker import get_current_worker

    from workbench.jsonl import JsonlTail

    tail, worker, reported = JsonlTail(run.launched.progress), get_current_worker(), -1
    while not worker.is_cancelled:
        code = run.launched.process.poll()  # before the read: once it ended, that read has everything
        rows = tail.read()
        if rows or tail.bad != reported or code is not None:
            reported = tail.bad
            app.post_message(EvalProgress(rows, tail.bad, code))
        if code is not None:
            return
        time.sleep(POLL)


def last_plain_line(path: Path) -> str:
    """The last line of the eval's stderr that is not a progress object (an error the CLI printed)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((printable(line)[:300] for line in reversed(lines) if line.strip() and not line.startswith("{")), "")


def points_table(curve, counts: list) -> Text:
    rows = [f"{'budget':>8} {'n':>6} {'accuracy':>9} {'95% interval':>15} {'mean thinking':>14}"]
    for p, n in zip(curve.points, counts):
        rows.append(f"{p.label:>8} {n:>6} {p.accuracy:>9.1%} {f'{p.low:.0%}–{p.high:.0%}':>15} {p.thinking_tokens:>14,.0f}")
    return Text("\n".join(rows))


def card_label(path: Path, card: dict) -> Text:
    suite = suite_name(card)
    accuracy = card.get("accuracy")
    accuracy = f"{accuracy:.1%}" if isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool) else "?"
    kind = f"sweep of {len(card['budgets'])}" if isinstance(card.get("budgets"), list) and card["budgets"] else "eval"
    stale = " · stale" if card.get("stale") else ""
    return Text(f"{printable(str(suite))[:24]} · {kind} · {accuracy}{stale}\n  {printable(path.name)[:36]}")


class EvalsScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back (a sweep goes on)"),
                Binding("ctrl+t", "stop", "Stop the sweep")]
    DEFAULT_CSS = """
    EvalsScreen #eval-args { height: 3; }
    EvalsScreen #eval-status { height: auto; padding: 0 1; }
    EvalsScreen #cards { width: 44; height: 1fr; border: round $secondary 60%; }
    EvalsScreen #view { width: 1fr; height: 1fr; }
    EvalsScreen #plot { height: 1fr; border: round $primary 60%; }
    EvalsScreen #points { height: auto; max-height: 12; padding: 0 1; }
    EvalsScreen #bar { height: 3; }
    """

    def __init__(self, info) -> None:
        """`info`: the ModelInfo of the model loaded (None: none yet)."""
        super().__init__()
        local = info is not None and info.location in ("", "local")
        self.folder = Path(info.path) if local else None
        self.model = info.name if info is not None else None
        self.cards: list[tuple[Path, dict]] = []
        self.shown: str | None = None  # the option shown: RUNNING or a card's index
        self._drawn: tuple | None = None  # (what, size) the plot was last drawn for
        self.status_text = ""

    def compose(self):
        yield Input(placeholder="--suite arithmetic --limit 50 --budgets 0,64,128,max   (Enter: a sweep of this model)",
                    id="eval-args")
        yield Static("", id="eval-status", markup=False)
        with Horizontal():
            yield OptionList(id="cards")
            with Vertical(id="view"):
                yield Static("", id="plot", markup=False)
                yield Static("", id="points", markup=False)
        with Horizontal(id="bar"):
            yield Button("Stop the sweep (resumable)", id="stop", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        # a Text, not a string: a border title is markup, and a served model's name is the server's to choose
        self.query_one("#cards").border_title = Text(f"Report cards of {printable(self.model or 'no model')[:30]}")
        self.query_one("#plot").border_title = "Accuracy by thinking budget"
        self.query_one("#eval-args").focus()
        self.list_cards(self.app.eval_run is not None and self.app.eval_run.running)

    # ---- the cards ------------------------------------------------------------------------------
    @work(thread=True, group="cards", exclusive=True, exit_on_error=False)
    def list_cards(self, show_running: bool = False, select: Path | None = None) -> None:
        from workbench.eval.card import card_paths, read_card

        cards = []
        if self.folder is not None:
            cards = [(p, c) for p, c in ((p, read_card(p)) for p in card_paths(self.folder)) if c is not None]
            cards.sort(key=lambda pc: modified(pc[0]), reverse=True)
        self.app.call_from_thread(self._listed, cards, show_running, select)

    def _listed(self, cards: list, show_running: bool, select: Path | None) -> None:
        self.cards = cards
        options = self.query_one("#cards", OptionList)
        options.clear_options()
        run = self.app.eval_run
        if run is not None:
            options.add_option(Option(Text(f"▶ sweep {'running' if run.running else 'launched here'}\n  "
                                           f"{printable(run.launched.arguments)[:36]}"), id=RUNNING))
        options.add_options([Option(card_label(p, c), id=str(i)) for i, (p, c) in enumerate(cards)])
        if self.folder is None:
            self.set_status("Report cards are listed for a model loaded on this machine.")
        elif not cards and run is None:
            self.set_status("No report cards yet: type a sweep above (e.g. --suite arithmetic --limit 50 "
                            "--budgets 0,64,128,max) and press Enter.")
        target = next((str(i) for i, (p, _) in enumerate(cards) if p == select), None) if select else None
        target = target or (RUNNING if show_running and run is not None else "0" if cards else None)
        if target is not None:
            options.highlighted = options.get_option_index(target)
            self.show(target)

    @on(OptionList.OptionHighlighted, "#cards")
    def highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show(event.option.id)

    def show(self, what: str) -> None:
        self.shown, self._drawn = what, None
        self.draw()

    def draw(self) -> None:
        """The curve and points of what is shown, sized to the plot (drawn again only when either changed)."""
        from workbench.errors import UserError
        from workbench.eval.curve import Curve, curve_of

        plot, points = self.query_one("#plot", Static), self.query_one("#points", Static)
        size = (plot.content_size.width, plot.content_size.height)
        if self.shown is None or size[0] < 20 or size[1] < 6:
            return
        if self.shown == RUNNING:
            run = self.app.eval_run
            curve = run.sweep.curve(f"{printable(run.model)[:40]} (running)", suite_of(run.launched.arguments))
            counts = [t.n for t in run.sweep.tallies.values() if t.n]
            key = (RUNNING, size, run.sweep.done, sum(counts))
            if curve is None:
                plot.update(Text("No sample finished yet."))
                points.update("")
                return
        else:
            path, card = self.cards[int(self.shown)]
            key = (self.shown, size)
            if key == self._drawn:
                return
            try:
                curve = curve_of(card, printable(path.name))
            except UserError as e:
                plot.update(Text(str(e)))
                points.update("")
                self._drawn = key
                return
            curve = Curve(curve.name, curve.suite, curve.points[:MAX_PLOTTED])
            raw = card["budgets"]
            counts = [p["n"] if isinstance(p.get("n"), int) and not isinstance(p.get("n"), bool) else "?" for p in raw]
        if key == self._drawn:
            return
        self._drawn = key
        from workbench.eval.curve import terminal_plot

        try:
            plot.update(Text.from_ansi(terminal_plot([curve], width=size[0], height=size[1])))
        except Exception as e:  # noqa: BLE001 - plotext on odd sizes or values: say so, keep the screen
            plot.update(Text(f"cannot draw the curve here: {printable(str(e))[:200]}"))
        points.update(points_table(curve, counts))

    def on_resize(self) -> None:
        self.call_after_refresh(self.draw)

    # ---- a sweep --------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.status_text = text
        self.query_one("#eval-status", Static).update(Text(text))

    @on(Input.Submitted, "#eval-args")
    def launch(self, event: Input.Submitted) -> None:
        from workbench.eval import launch

        event.stop()
        app, arguments = self.app, event.value.strip()
        if not arguments:
            return
        if app.eval_run is not None and app.eval_run.running:
            self.notify("A sweep is running: wait for it, or stop it (ctrl+t).", markup=False)
            return
        if self.folder is None:
            self.notify("Sweeps run on a model loaded on this machine (use `workbench eval --endpoint` for a "
                        "served one).", severity="warning", markup=False)
            return
        info = app.engine.info
        try:
            launched = launch.launch_eval(arguments, str(self.folder), info.adapter)
        except (OSError, ValueError) as e:
            self.notify(str(e), title="Could not start the eval", severity="error", markup=False, timeout=10)
            return
        run = app.eval_run = EvalRun(launched, self.model or "?", {p for p, _ in self.cards})
        app.run_worker(lambda: follow_eval(app, run), thread=True, group="eval", exit_on_error=False)
        self.set_status(app.eval_run.status())
        self.list_cards(show_running=True)

    def progress(self) -> None:
        """The app took new progress of its sweep."""
        run = self.app.eval_run
        status = run.status()
        if run.returncode not in (None, 0):
            why = next((n for n in reversed(run.sweep.notes) if "--resume" in n), None) or last_plain_line(
                run.launched.progress)
            status += f" · {why}" if why else ""
            if "--resume" not in status:
                status += " · the same arguments with --resume continue it"
        self.set_status(status)
        if run.returncode is not None:
            self._find_new_card(run)
        elif self.shown == RUNNING:
            self.draw()

    def _find_new_card(self, run: EvalRun) -> None:
        from workbench.eval.card import card_paths

        new = sorted((p for p in card_paths(self.folder) if p not in run.before),
                     key=lambda p: p.stat().st_mtime if p.exists() else 0) if self.folder else []
        self.list_cards(show_running=not new, select=new[-1] if new else None)

    def action_stop(self) -> None:
        run = self.app.eval_run
        if run is None or not run.running:
            self.notify("No sweep is running.", markup=False)
            return
        try:
            if run.stop_requested:  # a second stop: at once
                run.launched.process.terminate()
            else:
                run.launched.process.send_signal(signal.SIGINT)  # as Ctrl-C: the sample in flight is dropped
        except OSError:
            pass
        run.stop_requested = True
        self.notify("Stopping the sweep: finished samples are kept; the same arguments with --resume continue it.",
                    markup=False, timeout=5)
        self.set_status(run.status())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()


def modified(path: Path) -> float:
    """Its modification time; 0 for a card deleted meanwhile."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0

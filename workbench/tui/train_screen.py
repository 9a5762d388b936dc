"""The Train screen: a GRPO run's reward/accuracy/KL curves, step, latest sample, and a stop button.

It only reads the run folder (`metrics.jsonl`, `samples.jsonl`, appended by the trainer) twice a
second, from where it stopped reading (`jsonl.JsonlTail`), so the UI never waits on training. Training launched from
here is `workbench train grpo ...` in a separate process. Stop writes RUN/STOP: the trainer
checkpoints, then stops.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rich.text import Text
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Sparkline, Static

from workbench.jsonl import JsonlTail
from workbench.terminal import printable
from workbench.verify.answer import split_thinking

CURVES = (("reward", "reward"), ("accuracy", "accuracy"), ("kl", "KL"))
STOP_FILE = "STOP"  # the trainer's stop request (workbench/train/trainer.py)


class TrainLaunch(ModalScreen):
    """Arguments for `workbench train grpo` (e.g. `--steps 50 --name demo`), or a run folder to watch."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    TrainLaunch { align: center middle; }
    TrainLaunch #dialog { width: 80; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    """

    def compose(self):
        with Vertical(id="dialog"):
            yield Label("Train (GRPO): arguments for `workbench train grpo`, or a run folder to watch", markup=False)
            yield Input(placeholder="--steps 50 --name demo   |   runs/demo", id="train-args")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)


class TrainScreen(Screen):
    """Watches RUN; `process` is the training process if this app started it."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back (training goes on)"), Binding("s", "stop", "Stop")]
    DEFAULT_CSS = """
    TrainScreen #curves { height: auto; }
    TrainScreen .curve { width: 1fr; height: 5; border: round $primary 60%; }
    TrainScreen Sparkline { height: 3; }
    TrainScreen #progress { height: auto; padding: 0 1; }
    TrainScreen #sample { height: 1fr; border: round $secondary 60%; padding: 0 1; }
    TrainScreen #bar { height: 3; }
    """
    POLL = 0.5

    def __init__(self, run: Path, process: subprocess.Popen | None = None, steps: int | None = None) -> None:
        super().__init__()
        self.run, self.process, self.steps = Path(run), process, steps
        self.metrics = JsonlTail(self.run / "metrics.jsonl")
        self.samples = JsonlTail(self.run / "samples.jsonl")
        self.rows: list[dict] = []
        self.latest: dict | None = None
        self.stop_requested = False

    def compose(self):
        yield Static(Text(f"Run {printable(str(self.run))}"), id="progress")
        with Horizontal(id="curves"):
            for key, title in CURVES:
                box = Vertical(classes="curve", id=f"box-{key}")
                box.border_title = title
                with box:
                    yield Sparkline([], id=f"curve-{key}")
        with VerticalScroll(id="sample"):
            yield Static("No sample yet.", id="sample-text", markup=False)
        with Horizontal(id="bar"):
            yield Button("Stop (checkpoint, then stop)", id="stop", variant="error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sample").border_title = "Latest sample"
        self.refresh_run()
        self.set_interval(self.POLL, self.refresh_run)

    def refresh_run(self) -> None:
        new = [r for r in self.metrics.read() if isinstance(r.get("step"), int)]
        if self.metrics.restarted:  # the run rewrote its metrics (resumed): what was read before is gone
            self.rows = []
        self.rows += new
        samples = self.samples.read()
        if samples:
            self.latest = samples[-1]
        for key, title in CURVES:
            values = [float(r[key]) for r in self.rows if isinstance(r.get(key), (int, float))]
            self.query_one(f"#curve-{key}", Sparkline).data = values
            self.query_one(f"#box-{key}").border_title = f"{title} {values[-1]:.3f}" if values else title
        self.query_one("#progress", Static).update(Text(self.progress_line()))
        if samples:
            self.query_one("#sample-text", Static).update(Text(sample_text(self.latest)))

    def progress_line(self) -> str:
        step = self.rows[-1]["step"] if self.rows else 0
        parts = [f"Run {self.run}", f"step {step}" + (f"/{self.steps}" if self.steps else "")]
        if self.rows and isinstance(self.rows[-1].get("step_time"), (int, float)):
            parts.append(f"{self.rows[-1]['step_time']:.1f} s/step")
        if self.metrics.bad:
            parts.append(f"{self.metrics.bad} unreadable metrics lines skipped")
        if self.process is not None and self.process.poll() is not None:
            parts.append(f"finished (exit {self.process.returncode})")
        elif self.stop_requested:
            parts.append("stopping after the next checkpoint …")
        return printable(" · ".join(parts))

    def action_stop(self) -> None:
        try:
            (self.run / STOP_FILE).touch()
        except OSError as e:
            self.notify(f"Could not ask the run to stop: {e}", severity="error", markup=False)
            return
        self.stop_requested = True
        self.notify("Stopping: the run checkpoints, then stops.", markup=False, timeout=3)
        self.refresh_run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            self.action_stop()


def sample_text(sample: dict) -> str:
    """Prompt, thinking, answer and verdicts of one sampled completion (from samples.jsonl)."""
    completion = str(sample.get("completion", ""))
    thinking, answer, _ = split_thinking(completion)
    thinking = thinking.strip()
    scores = ", ".join(f"{k} {v:g}" for k, v in sample.items()
                       if k not in ("step", "prompt", "completion") and isinstance(v, (int, float)))
    lines = [f"step {sample.get('step', '?')} · {scores}", f"› {sample.get('prompt', '')}"]
    if thinking:
        lines += ["", "Thinking:", thinking]
    lines += ["", "Answer:", answer.strip()]
    return "\n".join(printable(line) for line in lines)

"""Starting `workbench eval ... --progress-json` as its own process (the app's Evals screen), and the
running curve its progress lines make.

The eval's stderr goes to a file (one JSON object per line, `runner.Progress`), its stdout to another
beside it; the app follows the file with `jsonl.JsonlTail`, so the eval never waits on the app. The
lines are another process's output: `RunningSweep.add` checks each one and counts what it skips.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.eval.card import wilson
from workbench.eval.curve import MAX_TOKENS, Curve, CurvePoint
from workbench.paths import workbench_home
from workbench.terminal import printable

OWN_FLAGS = ("--model", "-m", "--adapter", "--endpoint", "--progress-json", "--json")  # the app sets these
MAX_BUDGETS = 64  # labels beyond this many are not a sweep the app draws: counted as bad lines
MAX_NOTES = 5


def eval_command(arguments: str, model: str, adapter: str | None = None) -> list[str]:
    """`workbench eval --model MODEL [--adapter A] ARGUMENTS --progress-json`; ValueError (one line) for
    unbalanced quotes, a flag the app sets itself, or no --suite."""
    args = shlex.split(arguments)
    own = sorted({a.split("=")[0] for a in args if sets_own_flag(a.split("=")[0])})
    if own:
        raise ValueError(f"{', '.join(own)}: the app sets this itself (the model loaded now)")
    if not any(a in ("--suite", "-s") or a.startswith("--suite=") for a in args):
        raise ValueError("say which suite: e.g. --suite arithmetic --limit 50 --budgets 0,64,128,max")
    if not any(a == "--budgets" or a.startswith("--budgets=") for a in args):  # the screen draws a sweep
        raise ValueError("say which budgets: e.g. --budgets 0,64,128,max (a plain eval: `workbench eval`)")
    return [sys.executable, "-m", "workbench", "eval", "--model", model,
            *(["--adapter", adapter] if adapter else []), *args, "--progress-json"]


def sets_own_flag(arg: str) -> bool:
    """Whether argparse would read `arg` as one of OWN_FLAGS: itself, an abbreviation of a long one (`--mod`),
    or a short one with its value joined (`-mX`)."""
    if arg.startswith("--") and len(arg) > 2:
        return any(flag.startswith(arg) for flag in OWN_FLAGS if flag.startswith("--"))
    return arg.startswith("-m")


def suite_of(arguments: str) -> str:
    args = shlex.split(arguments)
    for i, a in enumerate(args):
        if a.startswith("--suite="):
            return a.split("=", 1)[1]
        if a in ("--suite", "-s") and i + 1 < len(args):
            return args[i + 1]
    return "?"


@dataclass
class LaunchedEval:
    process: subprocess.Popen
    progress: Path  # its stderr: JSON progress lines
    output: Path  # its stdout: the summary and the card's path
    arguments: str


def launch_eval(arguments: str, model: str, adapter: str | None = None, folder: Path | None = None) -> LaunchedEval:
    """Start the eval; OSError (cannot start, cannot write the folder) or ValueError (see eval_command)."""
    argv = eval_command(arguments, model, adapter)
    folder = Path(folder) if folder is not None else workbench_home() / "eval-progress"
    folder.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("eval-%Y%m%d-%H%M%S")
    progress, output = folder / f"{stem}.progress.jsonl", folder / f"{stem}.out"
    with open(progress, "wb") as err, open(output, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return LaunchedEval(process, progress, output, arguments)


@dataclass
class Tally:
    n: int = 0
    correct: int = 0
    thinking_tokens: int = 0


def _count(value) -> bool:
    """A plausible token or sample count (what the curve can draw: below MAX_TOKENS)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_TOKENS


@dataclass
class RunningSweep:
    """The sweep so far, from its progress lines: samples done of total, and per budget how many samples
    were judged, how many right, their thinking tokens. Samples an earlier (resumed) run did are in
    `done` but not in the tallies: the progress stream carries only the samples generated now."""

    done: int = 0
    total: int | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)  # by budget label, in the order first seen
    notes: list[str] = field(default_factory=list)  # the last few {"note"} lines, printable
    bad: int = 0  # lines skipped: not a progress object, or numbers that are not counts

    def add(self, row) -> None:
        if not isinstance(row, dict):
            self.bad += 1
        elif set(row) == {"note"} and isinstance(row["note"], str):
            self.notes = (self.notes + [printable(row["note"])[:300]])[-MAX_NOTES:]
        elif self._progress(row) is None:
            self.bad += 1

    def _progress(self, row: dict):
        done, total, points = row.get("done"), row.get("total"), row.get("points", [])
        if not (_count(done) and _count(total) and done <= total and isinstance(points, list)):
            return None
        checked = []
        for p in points:
            if not (isinstance(p, dict) and isinstance(p.get("budget"), str) and isinstance(p.get("correct"), bool)
                    and _count(p.get("thinking_tokens"))):
                return None
            checked.append((printable(p["budget"])[:20], p["correct"], p["thinking_tokens"]))
        if len(set(self.tallies) | {lb for lb, _, _ in checked}) > MAX_BUDGETS:
            return None
        self.done, self.total = done, total
        for lb, correct, tokens in checked:
            tally = self.tallies.setdefault(lb, Tally())
            tally.n, tally.correct, tally.thinking_tokens = tally.n + 1, tally.correct + correct, tally.thinking_tokens + tokens
        return True

    def curve(self, name: str, suite: str) -> Curve | None:
        """Per budget so far: accuracy with its Wilson 95% interval at the mean thinking tokens; None before
        the first sample."""
        points = []
        for lb, t in self.tallies.items():
            if t.n:
                low, high = wilson(t.correct, t.n)
                points.append(CurvePoint(lb, t.thinking_tokens / t.n, t.correct / t.n, low, high))
        return Curve(name, printable(suite)[:60], tuple(points)) if points else None

    def line(self) -> str:
        total = "?" if self.total is None else self.total
        accuracy = "" if not self.tallies else " · " + ", ".join(
            f"{lb}: {t.correct / t.n:.0%}" for lb, t in self.tallies.items() if t.n)
        return f"{self.done}/{total} samples{accuracy}"

"""Starting `workbench train grpo` as its own process (the app's F10), output to RUN/train.log."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def grpo_command(arguments: str) -> tuple[list[str], Path]:
    """`workbench train grpo ARGUMENTS` (a run folder under runs/ unless --out names one) and its folder."""
    args = shlex.split(arguments)
    if "--out" not in args:
        name = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--name"), time.strftime("tui-%Y%m%d-%H%M%S"))
        args += ["--out", str(Path("runs") / name)]
    out = Path(args[args.index("--out") + 1])
    return [sys.executable, "-m", "workbench", "train", "grpo", *args], out


@dataclass
class Launched:
    process: subprocess.Popen
    run: Path  # the run folder it writes metrics.jsonl, samples.jsonl and train.log into
    steps: int | None  # --steps, when given


def launch_grpo(arguments: str) -> Launched:
    """Start the run; OSError (cannot start, cannot write the folder) or ValueError (unbalanced quotes)."""
    argv, run = grpo_command(arguments)
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "train.log", "ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    steps = next((int(a) for a, b in zip(argv[1:], argv) if b == "--steps" and a.isdigit()), None)
    return Launched(process, run, steps)

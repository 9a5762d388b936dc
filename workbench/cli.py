"""The `workbench` command.

Each subcommand lives in its own module under `workbench/commands/` with two functions:
`add_arguments(parser)` (argparse only, cheap to import) and `main(args) -> int` (imports
what it needs, MLX included, when it runs). `workbench --help` therefore never imports MLX.
With no subcommand, `workbench` opens the TUI.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from workbench import __version__
from workbench.errors import UserError

# name -> (module under workbench.commands, one-line help). Add a command by adding a line.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "generate one response headless: thinking, answer, stats"),
    "cluster": ("cluster", "one model over several machines (mlx.distributed): init, serve, status"),
    "models": ("models", "list local models"),
    "eval": ("eval", "run a task suite on a model and write a report card bound to the weights' sha256"),
    "evals": ("evals", "list report cards (stale ones marked: the model files changed since)"),
    "verify": ("verify", "score completions in a JSONL file with a verifier (math, format, language, code, countdown)"),
    "compare": ("compare", "one prompt on several models, adapters, temperatures or samples, side by side"),
    "sessions": ("sessions", "saved sessions: list, show, export (md/jsonl/html), search, import"),
    "pull": ("pull", "download a catalog model or hub repo, with a fit check and a sha256 manifest"),
    "import": ("import_gguf", "turn a GGUF file (llama.cpp, Ollama, LM Studio) into an MLX model folder"),
    "train": ("train", "fine-tune: GRPO with verifiers, SFT, rejection sampling; fuse adapters; plot runs"),
    "doctor": ("doctor", "report platform, memory, BLAS, MLX versions and distributed backends"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Reasoning Workbench: run reasoning models locally and read how they think. "
        "Without a command, opens the app.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    importlib.import_module("workbench.commands.app").add_arguments(parser)  # options of the app (no command)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        command = importlib.import_module(f"workbench.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        command.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from workbench.blas import reexec_with_openblas

    reexec_with_openblas(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None) or "app"
    command = importlib.import_module(f"workbench.commands.{module}")
    try:
        return command.main(args) or 0
    except UserError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

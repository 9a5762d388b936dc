"""The `workbench` command.

Each subcommand lives in its own module under `workbench/commands/` with two functions:
`add_arguments(parser)` (argparse only, cheap to import) and `main(args) -> int` (imports
what it needs, MLX included, when it runs). `workbench --help` therefore never imports MLX.
With no subcommand, `workbench` opens the TUI.

A command module may declare `QUICK_EXIT = True`: run as the process (`entry()`), its process then ends
as soon as it returns, without the interpreter's teardown (see `quick_exit`).
"""

from __future__ import annotations

import importlib
import sys

from workbench import __version__
from workbench.errors import UserError

# name -> (module under workbench.commands, one-line help). Add a command by adding a line.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "generate one response headless: thinking, answer, stats"),
    "serve": ("serve", "an OpenAI-compatible server for one model on this machine, reusing prompt caches"),
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


def build_parser():
    """The `argparse.ArgumentParser` of every command (argparse is imported after the re-exec, not before)."""
    import argparse

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


def main(argv: list[str] | None = None, exit_process: bool = False) -> int:
    """The command's exit status. `exit_process` (only `entry()`, never a caller that goes on): a command that
    declares QUICK_EXIT ends the process here."""
    argv = sys.argv[1:] if argv is None else argv
    from workbench.blas import reexec_with_openblas

    reexec_with_openblas(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None) or "app"
    command = importlib.import_module(f"workbench.commands.{module}")
    args.exiting = exit_process and getattr(command, "QUICK_EXIT", False)  # the process ends when it returns
    try:
        status = command.main(args) or 0
    except UserError as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        status = 130
    if exit_process and getattr(command, "QUICK_EXIT", False):
        quick_exit(status)
    return status


def entry() -> int:
    """The process's entry point: `workbench` and `python -m workbench`."""
    return main(exit_process=True)


def quick_exit(status: int) -> None:
    """End the process with `status` now: atexit handlers run and the output is flushed, but the interpreter's
    teardown, which frees every module one by one (a few hundred ms once transformers and MLX are
    imported, all of it after the answer is on screen), is skipped. Returns instead when a non-daemon
    thread still runs: a normal exit waits for it."""
    import atexit
    import os
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()  # what a normal exit runs: verifier pools closed, temporary folders removed, ...
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: that output is lost either way
            pass
    os._exit(status)

"""`workbench` with no command: the app. Until the TUI lands, a streamed sample run."""

from __future__ import annotations

import argparse


def add_arguments(parser) -> None:
    pass


def main(args) -> int:
    from workbench.commands import run

    sample = argparse.Namespace(prompt="What is 12+30?", model=None, adapter=None, trust_remote_code=False,
                                temp=None, top_p=None, max_tokens=None, seed=None, json=False)
    return run.main(sample)

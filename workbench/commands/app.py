"""`workbench` with no command: the app (thinking and answer side by side, streamed live).

Its options sit on the top-level parser (`workbench --model NAME --adapter DIR`).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.commands.run import add_model_arguments, add_sampling_arguments

    add_model_arguments(parser)
    add_sampling_arguments(parser)


def main(args) -> int:
    from workbench.commands.run import sampling_from_args
    from workbench.engine.worker import Engine
    from workbench.tui.app import WorkbenchApp

    engine = Engine()
    try:
        app = WorkbenchApp(engine, model=args.model, adapter=args.adapter, sampling=sampling_from_args(args),
                           trust_remote_code=args.trust_remote_code)
        app.run()
    finally:
        engine.close()
    return app.return_code or 0

"""`workbench` with no command: the app (thinking and answer side by side, streamed live).

Its options sit on the top-level parser (`workbench --model NAME --adapter DIR`).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.commands.run import add_model_arguments, add_sampling_arguments

    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--endpoint", default=None, help="an OpenAI-compatible server (e.g. `workbench cluster serve`) "
                        "instead of a local model; token from $WORKBENCH_TOKEN")


def main(args) -> int:
    from workbench.commands.run import sampling_from_args
    from workbench.engine.worker import Engine
    from workbench.tui.app import WorkbenchApp

    if args.endpoint:
        from workbench.engine.remote import RemoteEngine
    engine = RemoteEngine(args.endpoint) if args.endpoint else Engine()
    try:
        app = WorkbenchApp(engine, model=args.model, adapter=args.adapter, sampling=sampling_from_args(args),
                           trust_remote_code=args.trust_remote_code)
        app.run()
    finally:
        engine.close()
    return app.return_code or 0

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


def main(args, engine=None) -> int:
    """`engine`: any engine object to open the app on (tests); by default a remote engine for
    --endpoint, else the MLX engine in its own process (the app's drawing and generation then do not
    share a GIL; `workbench run` keeps the in-process engine)."""
    from workbench.commands.run import sampling_from_args
    from workbench.tui.app import WorkbenchApp

    if engine is None and args.endpoint:
        from workbench.engine.remote import RemoteEngine

        engine = RemoteEngine(args.endpoint)
    elif engine is None:
        from workbench.engine.process import ProcessEngine

        engine = ProcessEngine()
    try:
        app = WorkbenchApp(engine, model=args.model, adapter=args.adapter, sampling=sampling_from_args(args),
                           trust_remote_code=args.trust_remote_code)
        app.run()
    finally:
        engine.close()
    return app.return_code or 0

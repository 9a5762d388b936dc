"""`workbench` with no command: the app (thinking and answer side by side, streamed live).

Its options sit on the top-level parser (`workbench --model NAME --adapter DIR`).
"""

from __future__ import annotations


def add_arguments(parser) -> None:
    from workbench.commands.arguments import (
        add_decoding_arguments, add_engine_arguments, add_model_arguments, add_sampling_arguments,
    )

    add_engine_arguments(parser)
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_decoding_arguments(parser)


def main(args, engine=None) -> int:
    """`engine`: any engine object to open the app on (tests); by default a remote engine for
    --endpoint, else the MLX engine in its own process (the app's drawing and generation then do not
    share a GIL; `workbench run` keeps the in-process engine)."""
    from workbench.commands.arguments import decoding_from_args
    from workbench.commands.run import sampling_from_args
    from workbench.engine.choose import open_engine, refuse_decoding
    from workbench.tui.app import WorkbenchApp

    decoding = decoding_from_args(args)
    if engine is None:
        engine = open_engine(args.endpoint, own_process=True)
        refuse_decoding(engine, decoding, args.endpoint)
    try:
        app = WorkbenchApp(engine, model=args.model, adapter=args.adapter, sampling=sampling_from_args(args),
                           trust_remote_code=args.trust_remote_code, decoding=decoding)
        app.run()
    finally:
        engine.close()
    return app.return_code or 0

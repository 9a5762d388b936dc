"""One way to choose the engine a command runs on: a model served elsewhere, or one loaded here.

`open_engine(endpoint)` returns a `RemoteEngine` (any OpenAI-compatible server that streams
reasoning, e.g. `workbench cluster serve`; token from `token=` or $WORKBENCH_TOKEN), else an engine
that owns MLX on this machine: the in-process `ThreadEngine` (its own thread), or with
`own_process=True` a `ProcessEngine` (MLX in a child process; the app uses it so drawing and
generation do not share a GIL). Each is an `engine.protocol.Engine`.
"""

from __future__ import annotations

from workbench.engine.protocol import Engine


def open_engine(endpoint: str | None = None, token: str | None = None, own_process: bool = False) -> Engine:
    if endpoint:
        from workbench.engine.remote import RemoteEngine

        return RemoteEngine(endpoint, token)
    if own_process:
        from workbench.engine.process import ProcessEngine

        return ProcessEngine()
    from workbench.engine.thread import ThreadEngine

    return ThreadEngine()


def refuse_decoding(engine: Engine, decoding, endpoint: str | None) -> None:
    """One line (UserError) when decoding settings are asked of an engine that runs its model elsewhere:
    its server decides how it decodes (run, the app and eval ask this)."""
    from workbench.errors import UserError

    if decoding.local and not engine.capabilities.decode:
        raise UserError(f"{endpoint or 'this engine'} decodes on its own machine: --context, --kv-bits/--kv-start and "
                        f"--draft/--draft-tokens/--draft-mode apply only to a model run here; drop them (or set them "
                        f"where the model is served)")

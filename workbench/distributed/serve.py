"""`workbench serve`: the OpenAI-compatible server of the cluster's rank 0 (`server.ChatServer`, the same API
and the same token and loopback rules) on one machine, answering with a local `ThreadEngine`, which steers
the thinking (budgets, effort, answer now: the server's steering fields).

Requests queue on the engine thread, one generation at a time. The engine's prompt caches outlive a
request, so a client's next turn (or a regenerate, or another client's chat) computes only what no kept
cache holds; each answer's usage says how many prompt tokens were reused
(`prompt_tokens_details.cached_tokens`, as OpenAI's API and mlx_lm.server report them).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from workbench.distributed.rank import prepare
from workbench.distributed.server import ChatServer
from workbench.engine.events import ChatRequest, Decoding, Failed
from workbench.engine.generate import decoder_for
from workbench.engine.thread import ThreadEngine
from workbench.errors import UserError


@dataclass
class LocalServer:
    server: ChatServer
    engine: ThreadEngine
    model_name: str

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> "LocalServer":
        """Serve on a thread of its own (tests, benchmarks)."""
        threading.Thread(target=self.server.serve_forever, name="http", daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.engine.close()


def open_server(model: str | None, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                prompt_cache_gb: float | None = None, decoding: Decoding = Decoding()) -> LocalServer:
    """Bind `host:port` (0: any free port), then load `model`; UserError in one line when either fails.
    `decoding`: how every request decodes (KV-cache bits, a draft), over the model's profile."""
    from workbench.models.local import resolve_model

    folder = resolve_model(model)
    if decoding.draft:
        resolve_model(decoding.draft)  # a draft that is not there is one line now, not a failure per request
    try:
        server = ChatServer((host, port), lambda request: None, folder.name, token, steers=True)
    except (OSError, ValueError, OverflowError) as e:  # OverflowError: a port beyond 65535
        raise UserError(f"cannot serve on {host}:{port} ({getattr(e, 'strerror', None) or e})") from None
    engine = ThreadEngine(prompt_cache_gb)
    try:
        *_, last = engine.load(folder).collect()
        if isinstance(last, Failed):
            raise UserError(last.message)
        loaded = engine.call(lambda loaded: loaded).result()
        context = decoder_for(loaded, decoding.over(loaded.profile.decoding)).context  # UserError: beyond the model's
    except BaseException:
        server.server_close()
        engine.close()
        raise

    def submit(request: ChatRequest):
        # the prompt and max_tokens checked against the context here (the tokenizer only), refused with 400
        sampling = prepare(loaded, request, context)["sampling"]
        return engine.generate(replace(request, sampling=replace(request.sampling, max_tokens=sampling["max_tokens"]),
                                       decoding=decoding))

    server.submit, server.model_id = submit, loaded.info.name
    return LocalServer(server, engine, loaded.info.name)

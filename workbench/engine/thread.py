"""The in-process engine: one long-lived thread owns MLX (load and generate).

Since mlx 0.31 streams belong to the thread that created them, so a model loaded on one
thread can fail on another. Everything MLX happens on `ThreadEngine`'s thread; other threads (the
TUI, the CLI, eval) submit jobs and read events from each job's thread-safe queue. It implements
`workbench.engine.protocol.Engine`, with the optional `call`.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from workbench.engine.events import ChatRequest, Done, Failed, Loaded, Loading, ModelInfo, Stats
from workbench.engine.job import Job, one_line
from workbench.engine.memory import peak_rss_gb
from workbench.engine.protocol import Capabilities
from workbench.errors import UserError


PROMPT_CACHE_VARIABLE = "WORKBENCH_PROMPT_CACHE_GB"


def prompt_cache_setting(environ=os.environ, given: float | None = None) -> float:
    """GB of KV caches kept for reuse by later requests: `given` (a command's --prompt-cache-gb), else
    $WORKBENCH_PROMPT_CACHE_GB, default 2; 0 keeps only the latest generation's."""
    from workbench.engine.generate import DEFAULT_PROMPT_CACHE_GB

    if given is not None:
        if not 0 <= given < 1e6:
            raise UserError(f"--prompt-cache-gb must be a number of GB, 0 or more (it is {given})")
        return given
    text = environ.get(PROMPT_CACHE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_PROMPT_CACHE_GB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise UserError(f"${PROMPT_CACHE_VARIABLE} must be a number of GB, 0 or more (it is {text[:40]!r})")
    return value


class ThreadEngine:
    capabilities = Capabilities(call=True, steer=True, decode=True)

    def __init__(self, prompt_cache_gb: float | None = None) -> None:
        """`prompt_cache_gb`: GB of KV caches kept for later requests (default: `prompt_cache_setting()`)."""
        self.prompt_cache_gb = prompt_cache_setting() if prompt_cache_gb is None else prompt_cache_gb
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._loaded = None  # engine thread only
        self._cache = None  # engine thread only: the PromptCache of recent generations, reused by the next
        self._draft = None  # engine thread only: (name asked for, decode.Draft) of the loaded model
        self.info: ModelInfo | None = None
        self._thread = threading.Thread(target=self._serve, name="mlx-engine", daemon=True)
        self._thread.start()

    # ---- caller side -----------------------------------------------------------------------
    def memory_gb(self) -> float:
        """The peak resident memory of the process the model lives in: this one."""
        return peak_rss_gb()

    def load(self, model: str | Path | None = None, adapter: str | Path | None = None,
             trust_remote_code: bool = False, into: Job | None = None) -> Job:
        """`into`: the job to fill (a subclass that forwards events elsewhere); a new one by default."""
        job = Job() if into is None else into
        self._inbox.put(("load", job, (model, adapter, trust_remote_code)))
        return job

    def generate(self, request: ChatRequest, into: Job | None = None) -> Job:
        job = Job.for_request(request) if into is None else into
        self._inbox.put(("generate", job, request))
        return job

    def call(self, fn: Callable[[Any], Any]) -> Future:
        """Run `fn(loaded_model)` on the engine thread (e.g. count tokens with the model's tokenizer)."""
        future: Future = Future()
        self._inbox.put(("call", future, fn))
        return future

    def close(self, timeout: float = 5.0) -> None:
        self._inbox.put(("close", None, None))
        self._thread.join(timeout)

    def __enter__(self) -> "ThreadEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- engine thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            kind, job, payload = self._inbox.get()
            if kind == "close":
                self._loaded = self._cache = None
                if "mlx.core" in sys.modules:
                    # A thread that made MLX streams must destroy them before it ends, or the
                    # process aborts at exit ("terminate called without an active exception").
                    sys.modules["mlx.core"].clear_streams()
                return
            try:
                if kind == "load":
                    self._load(job, *payload)
                elif kind == "generate":
                    self._generate(job, payload)
                elif kind == "call":
                    if job.set_running_or_notify_cancel():
                        job.set_result(payload(self._loaded))
            except Exception as e:  # noqa: BLE001 - the engine thread must survive any job
                if kind == "call":
                    job.set_exception(e)
                else:
                    job.put(Failed(one_line(e)))

    def _load(self, job: Job, model, adapter, trust_remote_code) -> None:
        from workbench.engine.loader import load_model
        from workbench.models.local import resolve_model

        try:
            folder = resolve_model(str(model) if model else None)
            job.put(Loading(folder.name))
            loaded = load_model(folder, adapter=adapter, trust_remote_code=trust_remote_code)
        except UserError as e:
            job.put(Failed(str(e)))
            return
        self._loaded, self.info, self._cache, self._draft = loaded, loaded.info, None, None
        job.put(Loaded(loaded.info))

    def _draft_for(self, name: str):
        """The loaded model's draft named `name` (loaded once, kept until another model or draft)."""
        from workbench.engine.decode import Draft, check_same_vocabulary
        from workbench.engine.loader import load_model
        from workbench.models.local import resolve_model

        if self._draft is not None and self._draft[0] == name:
            return self._draft[1]
        self._draft = None
        folder = resolve_model(name)
        draft = load_model(folder)
        check_same_vocabulary(self._loaded.tokenizer, draft.tokenizer, self._loaded.info.name, folder.name)
        self._draft = (name, Draft(self._loaded.model, draft.model, folder.name))
        self._cache = None
        return self._draft[1]

    def _generate(self, job: Job, request: ChatRequest) -> None:
        from workbench.engine.generate import PromptCache, decoder_for, stream_reasoning
        from workbench.engine.profiles import decoding_problem

        if job.stop_reason():
            job.put(Done(Stats(finish_reason=job.stop_reason())))
            return
        if self._loaded is None:
            job.put(Failed("no model loaded"))
            return
        decoding = request.decoding.over(self._loaded.profile.decoding)
        problem = decoding_problem(decoding)
        if problem:
            job.put(Failed(problem))
            return
        try:
            draft = self._draft_for(decoding.draft) if decoding.draft else None
        except UserError as e:
            job.put(Failed(f"draft model: {e}"))
            return
        if self._cache is None:
            self._cache = PromptCache(max_bytes=int(self.prompt_cache_gb * 1e9))
        for event in stream_reasoning(self._loaded, request, stop=job.stop_reason, steer=job.take_steer,
                                      cache=self._cache, decoder=decoder_for(self._loaded, decoding, draft)):
            job.put(event)

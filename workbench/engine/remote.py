"""A remote engine: any OpenAI-compatible server that streams reasoning. Pure Python (no MLX).

Implements `workbench.engine.protocol.Engine`, with the optional `cluster()` (our cluster's ranks). Thinking arrives as `reasoning_content` (llama.cpp, DeepSeek, our
cluster), `reasoning` (mlx_lm.server) or `thinking` (Ollama); servers that leave `<think>` tags
in `content` are split with our `ReasoningSplitter`. Until a server sends one of those fields,
`content` starts inside thinking, as the default profile's `force_think` has it: R1 templates open
`<think>` in the prompt, so a server without a reasoning parser streams `...</think>answer`. Token
counts come from the server's `usage` when it sends a plausible one, else one per streamed delta.
A server that ignores `stream: true` and answers one JSON body is read the same way.
Token: `token=` or $WORKBENCH_TOKEN.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import threading
import time
from urllib.parse import urlsplit

from workbench.engine.events import (
    ChatRequest, Done, Failed, Loaded, Loading, ModelInfo, Stats, Think,
)
from workbench.engine.job import Job
from workbench.engine.protocol import Capabilities
from workbench.engine.splitter import ReasoningSplitter
from workbench.errors import UserError

REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
MAX_PLAUSIBLE_TOKENS = 10**9  # a server's usage beyond this (or negative, or not an integer) is not believed
MAX_PLAUSIBLE_GB = 1e6
DEFAULT_MODEL = "default_model"  # what mlx_lm.server calls the model it loaded; llama.cpp ignores the name


class EndpointError(UserError):
    """A failed request; `status` is the HTTP status, 0 when the server could not be reached."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status
MAX_PLAIN_BODY = 64 << 20
TIMEOUT = 120.0  # seconds without a byte from the server (prompt processing on a big model is slow)


class RemoteEngine:
    capabilities = Capabilities(cluster=True)

    def __init__(self, endpoint: str, token: str | None = None, timeout: float = TIMEOUT):
        url = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UserError(f"--endpoint {endpoint}: expected a URL like http://127.0.0.1:8123")
        self.endpoint = f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"
        self._url = url
        self._base = url.path.rstrip("/")
        if not self._base.endswith("/v1"):
            self._base += "/v1"
        self.token = token if token is not None else os.environ.get("WORKBENCH_TOKEN")
        self.timeout = timeout
        self.info: ModelInfo | None = None

    # ---- HTTP --------------------------------------------------------------------------------
    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        return cls(self._url.hostname, self._url.port, timeout=self.timeout)

    def _request(self, method: str, path: str, body: dict | None = None):
        """(connection, response); raises UserError with one line for any failure."""
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self._connect()
        try:
            conn.request(method, self._base + path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
        except OSError as e:
            conn.close()
            raise EndpointError(f"{self.endpoint}: cannot reach the server ({e.strerror or e})") from None
        except http.client.HTTPException as e:
            conn.close()
            raise EndpointError(f"{self.endpoint}: bad answer ({type(e).__name__})", 502) from None
        if response.status >= 400:
            raw = response.read(65536)
            conn.close()
            raise EndpointError(f"{self.endpoint}: HTTP {response.status}: {error_message(raw) or response.reason}"
                                + (" (check the token)" if response.status == 401 else ""), response.status)
        return conn, response

    def _get_json(self, path: str) -> dict:
        conn, response = self._request("GET", path)
        try:
            data = json.loads(response.read(1 << 20))
        except (ValueError, OSError):
            raise EndpointError(f"{self.endpoint}{self._base}{path}: not a JSON answer", 502) from None
        finally:
            conn.close()
        if not isinstance(data, dict):
            raise EndpointError(f"{self.endpoint}{self._base}{path}: not a JSON object", 502)
        return data

    # ---- engine interface --------------------------------------------------------------------
    def load(self, model=None, adapter=None, trust_remote_code: bool = False) -> Job:
        """Pick the server's model (or the named one): Loading, then Loaded(info) or Failed."""
        job = Job()
        job.put(Loading(str(model or self.endpoint)))
        if adapter is not None:
            job.put(Failed(f"{self.endpoint}: adapters cannot be loaded into a remote engine"))
            return job
        try:
            listed = self._get_json("/models").get("data", [])
            models = [m.get("id") for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)]
        except EndpointError as e:
            if e.status in (0, 401, 403):  # unreachable or refused: nothing will work
                job.put(Failed(str(e)))
                return job
            models = []  # a server without a (working) model list: ask for its default model
        if model is not None and models and str(model) not in models:
            job.put(Failed(f"{self.endpoint}: no model {model!s} (it serves: {', '.join(models)})"))
            return job
        name = str(model) if model is not None else (models[0] if models else DEFAULT_MODEL)
        self.info = ModelInfo(name=name, path=self.endpoint, location=self.endpoint)
        job.put(Loaded(self.info))
        return job

    def generate(self, request: ChatRequest) -> Job:
        job = Job(stop_on_loop=request.stop_on_loop)
        threading.Thread(target=self._generate, args=(job, request), name="remote-engine", daemon=True).start()
        return job

    def cluster(self) -> dict:
        """Our cluster's `/v1/cluster`: which layers each rank holds and its memory (EndpointError from
        servers that are not our cluster)."""
        return self._get_json("/cluster")

    def memory_gb(self) -> None:
        """Not known here: the model's memory is the server's (our cluster's is in `cluster()`)."""
        return None

    def close(self, timeout: float = 5.0) -> None:
        self.info = None

    def __enter__(self) -> "RemoteEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- one streamed response ---------------------------------------------------------------
    def _body(self, request: ChatRequest) -> dict:
        # Earlier thinking stays out of the prompt, as it does locally.
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        s = request.sampling
        body = {"model": self.info.name if self.info else None, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}
        for key, value in (("temperature", s.temperature), ("top_p", s.top_p), ("max_tokens", s.max_tokens), ("seed", s.seed)):
            if value is not None:
                body[key] = value
        return body

    def _generate(self, job: Job, request: ChatRequest) -> None:
        start = time.perf_counter()
        try:
            conn, response = self._request("POST", "/chat/completions", self._body(request))
        except UserError as e:
            job.put(Failed(str(e)))
            return
        stream = StreamState(start)
        try:
            plain = not (response.getheader("Content-Type") or "").startswith("text/event-stream")
            chunks = [plain_answer(response)] if plain else sse_data(response)  # plain: it ignored `stream: true`
            for data in chunks:
                if job.stop_reason():
                    stream.finish = job.stop_reason()
                    break
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise UserError(f"{self.endpoint}: sent a line that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise UserError(f"{self.endpoint}: sent a chunk that is not a JSON object")
                if "error" in chunk:
                    raise UserError(f"{self.endpoint}: {error_message(json.dumps(chunk)) or 'server error'}")
                for event in stream.feed(chunk):
                    job.put(event)
            else:
                if not stream.finish and not plain:
                    raise UserError(f"{self.endpoint}: the connection closed mid-response")
        except UserError as e:
            job.put(Failed(str(e)))
            return
        except (OSError, http.client.HTTPException) as e:
            job.put(Failed(f"{self.endpoint}: connection lost mid-response ({getattr(e, 'strerror', None) or type(e).__name__})"))
            return
        finally:
            conn.close()
        for event in stream.end():
            job.put(event)


def error_message(raw) -> str:
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error).strip().splitlines()[0] if error else ""


def plain_answer(response) -> str:
    """The body of a non-streamed answer, as if it were one SSE event followed by [DONE]."""
    return response.read(MAX_PLAIN_BODY).decode("utf-8", errors="replace")


def plausible_count(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PLAUSIBLE_TOKENS:
        return value
    return None


def sse_data(response):
    """The `data:` payloads of a server-sent event stream, one per event."""
    lines = []
    while True:
        line = response.readline(1 << 20)
        if not line:
            return
        line = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            lines.append(line[5:].lstrip(" "))
        elif not line and lines:
            yield "\n".join(lines)
            lines = []


class StreamState:
    """Deltas to events, and the client-side numbers for Stats."""

    def __init__(self, start: float):
        self.start = start
        self.splitter: ReasoningSplitter | None = None  # made at the first content: see the module doc
        self.reasoning_field = False  # the server sends thinking in a field of its own
        self.stats = Stats()
        self.first = self.think_end = None
        self.finish = ""
        self.usage: dict | None = None

    def _count(self, event) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            self.stats.time_to_first_token = now - self.start
        if isinstance(event, Think):
            self.stats.thinking_tokens += 1
        else:
            self.stats.answer_tokens += 1
            if self.think_end is None:
                self.think_end = now

    def feed(self, chunk: dict) -> list:
        out = []
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("stats"), dict):  # our cluster's extension: the server's own numbers
            peak = chunk["stats"].get("peak_memory_gb")
            if isinstance(peak, int) and not isinstance(peak, bool):
                peak = float(peak) if peak < MAX_PLAUSIBLE_GB else -1.0  # float() of 400 digits overflows
            plausible = isinstance(peak, float) and math.isfinite(peak) and 0 <= peak < MAX_PLAUSIBLE_GB
            self.stats.peak_memory_gb = peak if plausible else 0.0
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                continue
            for key in REASONING_KEYS:
                if isinstance(delta.get(key), str) and delta[key]:
                    self.reasoning_field = True
                    out.append(Think(delta[key], 1))
            content = delta.get("content")
            if isinstance(content, str) and (content.strip() or self.splitter is not None):
                if self.splitter is None:
                    self.splitter = ReasoningSplitter(start_in_thinking=not self.reasoning_field)
                out.extend(self.splitter.feed(content))
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        for event in out:
            self._count(event)
        return [type(e)(e.text, 1) for e in out]

    def end(self) -> list:
        out = self.splitter.finish() if self.splitter else []
        for event in out:
            self._count(event)
        end = time.perf_counter()
        s = self.stats
        first = self.first or end
        if s.thinking_tokens:
            s.thinking_time = (self.think_end or end) - first
        if s.answer_tokens:
            s.answer_time = end - (self.think_end or first)
        s.total_time = end - self.start
        s.thinking_closed = bool(s.thinking_tokens and s.answer_tokens) or bool(self.splitter and self.splitter.closed)
        usage = self.usage or {}
        prompt, completion = plausible_count(usage.get("prompt_tokens")), plausible_count(usage.get("completion_tokens"))
        if prompt is not None:
            s.prompt_tokens = prompt
        details = usage.get("completion_tokens_details")
        reasoning = plausible_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        if completion is not None and reasoning is not None and reasoning <= completion:
            s.thinking_tokens, s.answer_tokens = reasoning, completion - reasoning
        s.finish_reason = self.finish if self.finish in ("cancelled", "loop", "length") else "stop"
        return [*out, Done(s)]

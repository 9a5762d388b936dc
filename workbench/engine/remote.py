"""A remote engine: any OpenAI-compatible server that streams reasoning. Pure Python (no MLX).

Implements `workbench.engine.protocol.Engine`, with the optional `cluster()` (our cluster's ranks), and
`steer` when the server is ours and says it steers (`openai_steering`: budgets and effort go in the
request, its markers come back as `Steered`, answer now and extend as requests of their own).
Thinking arrives as `reasoning_content` (llama.cpp, DeepSeek, our
cluster), `reasoning` (mlx_lm.server) or `thinking` (Ollama); servers that leave `<think>` tags
in `content` are split with our `ReasoningSplitter`. Until a server sends one of those fields,
`content` starts inside thinking, as the default profile's `force_think` has it: R1 templates open
`<think>` in the prompt, so a server without a reasoning parser streams `...</think>answer`. Token
counts come from the server's `usage` when it sends a plausible one, else one per streamed delta.
A server that ignores `stream: true` and answers one JSON body is read the same way.
Token: `token=` or $WORKBENCH_TOKEN.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import os
import queue
import re
import socket
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from workbench.engine.events import (
    ChatRequest, Done, Failed, Loaded, Loading, ModelInfo, Stats, Steered, Think,
)
from workbench.engine.job import Job
from workbench.engine.openai_steering import (
    ACTIONS, CUTS, DRAFTED, STEERED, drafted_from, serves_steering, steered_from, steering_body,
)
from workbench.engine.protocol import Capabilities
from workbench.engine.splitter import ReasoningSplitter
from workbench.errors import UserError
from workbench.terminal import encodable

REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
MAX_PLAUSIBLE_TOKENS = 10**9  # a server's usage beyond this (or negative, or not an integer) is not believed
MAX_PLAUSIBLE_GB = 1e6
DEFAULT_MODEL = "default_model"  # what mlx_lm.server calls the model it loaded; llama.cpp ignores the name


class EndpointError(UserError):
    """A failed request; `status` is the HTTP status, 0 when the server could not be reached or did not answer."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


MAX_PLAIN_BODY = 64 << 20  # a non-streamed answer (or a model list) larger than this is refused
MAX_EVENT = 64 << 20  # one SSE event (a whole `data:` line or several): large, but bounded
TIMEOUT = 120.0  # seconds without a byte from the server (prompt processing on a big model is slow)
LOAD_TIMEOUT = 15.0  # seconds for the model list: the server answers it at once when it answers at all
CANCEL_POLL = 0.05  # seconds between checks for a cancel while the server says nothing


class RemoteEngine:
    capabilities = Capabilities(cluster=True)  # until a load finds a server that steers

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
        self.ours = False  # our server: it splits thinking from the answer itself

    # ---- HTTP --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None, timeout: float | None = None,
                 on_socket: Callable[[socket.socket], None] = lambda sock: None):
        """(connection, response); raises EndpointError with one line for any failure. `on_socket` gets
        the socket as soon as it is connected (to hang up from another thread)."""
        timeout = timeout or self.timeout
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        cls = http.client.HTTPSConnection if self._url.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._url.hostname, self._url.port, timeout=timeout)
        try:
            conn.connect()
            on_socket(conn.sock)
            conn.request(method, self._base + path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise EndpointError(f"{self.endpoint}: no answer for {timeout:g} s") from None
        except OSError as e:
            conn.close()
            raise EndpointError(f"{self.endpoint}: cannot reach the server ({e.strerror or type(e).__name__})") from None
        except http.client.HTTPException as e:
            conn.close()
            raise EndpointError(f"{self.endpoint}: bad answer ({type(e).__name__})", 502) from None
        if response.status >= 400:
            try:
                raw = response.read(65536)
            except (OSError, http.client.HTTPException):
                raw = b""
            conn.close()
            reason = error_message(raw) or first_line(str(response.reason or "")) or "error"
            raise EndpointError(f"{self.endpoint}: HTTP {response.status}: {reason}"
                                + (" (check the token)" if response.status == 401 else ""), response.status)
        return conn, response

    def _get_json(self, path: str, timeout: float | None = None) -> dict:
        conn, response = self._request("GET", path, timeout=timeout)
        try:
            data = json.loads(response.read(MAX_PLAIN_BODY))
        except TimeoutError:
            raise EndpointError(f"{self.endpoint}: no answer for {timeout or self.timeout:g} s") from None
        except (ValueError, RecursionError, OSError, http.client.HTTPException):
            raise EndpointError(f"{self.endpoint}{self._base}{path}: not a JSON answer", 502) from None
        finally:
            conn.close()
        if not isinstance(data, dict):
            raise EndpointError(f"{self.endpoint}{self._base}{path}: not a JSON object", 502)
        return data

    # ---- engine interface --------------------------------------------------------------------
    def load(self, model=None, adapter=None, trust_remote_code: bool = False) -> Job:
        """Pick the server's model (or the named one): Loading, then Loaded(info) or Failed. Returns at
        once; the model list is asked for on a thread of its own."""
        job = Job()
        job.put(Loading(str(model or self.endpoint)))
        threading.Thread(target=self._load, args=(job, model, adapter), name="remote-load", daemon=True).start()
        return job

    def _load(self, job: Job, model, adapter) -> None:
        if adapter is not None:
            job.put(Failed(f"{self.endpoint}: adapters cannot be loaded into a remote engine"))
            return
        try:
            listed = self._get_json("/models", timeout=min(self.timeout, LOAD_TIMEOUT)).get("data")
            entries = {encodable(m["id"]): m for m in listed if isinstance(m, dict) and isinstance(m.get("id"), str)} \
                if isinstance(listed, list) else {}
            models = list(entries)
        except EndpointError as e:
            if e.status in (0, 401, 403):  # unreachable, silent or refused: nothing will work
                job.put(Failed(str(e)))
                return
            entries, models = {}, []  # a server without a (working) model list: ask for its default model
        except Exception as e:  # noqa: BLE001 - whatever happens, the load ends with one line
            job.put(Failed(f"{self.endpoint}: unreadable model list ({type(e).__name__})"))
            return
        if model is not None and models and str(model) not in models:
            job.put(Failed(f"{self.endpoint}: no model {model!s} (it serves: {', '.join(models)})"))
            return
        name = str(model) if model is not None else (models[0] if models else DEFAULT_MODEL)
        entry = entries.get(name)
        self.ours = isinstance(entry, dict) and entry.get("owned_by") == "workbench"
        self.capabilities = Capabilities(cluster=True, steer=serves_steering(entry))
        self.info = ModelInfo(name=name, path=self.endpoint, location=self.endpoint)
        job.put(Loaded(self.info))

    def generate(self, request: ChatRequest) -> Job:
        job = Job(stop_on_loop=request.stop_on_loop)  # answer_on_loop: the server's job watches for loops
        if request.steers and not self.capabilities.steer:
            job.put(Failed(f"{self.endpoint} cannot steer the thinking (budgets, effort, continuing a thinking): "
                           "it is not a workbench server that steers"))
            return job
        threading.Thread(target=self._generate, args=(job, request), name="remote-engine", daemon=True).start()
        return job

    def cluster(self) -> dict:
        """Our cluster's `/v1/cluster`: which layers each rank holds and its memory (EndpointError from
        servers that are not our cluster)."""
        return self._get_json("/cluster", timeout=min(self.timeout, LOAD_TIMEOUT))

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
        # Earlier thinking stays out of the prompt, as it does locally, unless the request keeps it.
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if request.keep_thinking:
            for sent, m in zip(messages, request.messages):
                if m.role == "assistant" and m.thinking:
                    sent["reasoning_content"] = m.thinking
        s = request.sampling
        body = {"model": self.info.name if self.info else None, "messages": messages, "stream": True,
                "stream_options": {"include_usage": True}}
        for key, value in (("temperature", s.temperature), ("top_p", s.top_p), ("max_tokens", s.max_tokens), ("seed", s.seed)):
            if value is not None:
                body[key] = value
        if self.capabilities.steer:
            body.update(steering_body(request))
        return body

    def _send_steer(self, response_id: str, action: str) -> None:
        """Answer now / extend a response that streams (on a thread of its own; a lost one is dropped)."""
        with contextlib.suppress(UserError, OSError, http.client.HTTPException):
            conn, response = self._request("POST", f"/chat/completions/{response_id}/steer", {"action": action},
                                           timeout=min(self.timeout, LOAD_TIMEOUT))
            conn.close()

    def _read(self, request: ChatRequest, inbox: queue.SimpleQueue, sockets: list) -> None:
        """The network side of one response, on a thread of its own: every `data:` payload into `inbox`,
        then `_END` (or a `_Failure`). Blocking here never holds up a cancel: `_generate` hangs up."""
        try:
            conn, response = self._request("POST", "/chat/completions", self._body(request), on_socket=sockets.append)
            try:
                if (response.getheader("Content-Type") or "").startswith("text/event-stream"):
                    for data in sse_data(response):
                        inbox.put(data)
                else:  # a server that ignored `stream: true`: its one JSON answer
                    inbox.put(_Plain(response.read(MAX_PLAIN_BODY).decode("utf-8", errors="replace")))
            finally:
                conn.close()
            inbox.put(_END)
        except UserError as e:
            inbox.put(_Failure(str(e)))
        except ValueError as e:  # from sse_data
            inbox.put(_Failure(f"{self.endpoint}: {e}"))
        except TimeoutError:
            inbox.put(_Failure(f"{self.endpoint}: no answer for {self.timeout:g} s mid-response"))
        except (OSError, http.client.HTTPException) as e:
            inbox.put(_Failure(f"{self.endpoint}: connection lost mid-response "
                               f"({getattr(e, 'strerror', None) or type(e).__name__})"))

    def _generate(self, job: Job, request: ChatRequest) -> None:
        stream = StreamState(time.perf_counter(), content_is_answer=self.ours)
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        sockets: list = []
        steers: list[str] = []  # answer now / extend, until the response's id is known
        threading.Thread(target=self._read, args=(request, inbox, sockets), name="remote-read", daemon=True).start()
        try:
            while True:
                try:
                    data = inbox.get(timeout=CANCEL_POLL)
                except queue.Empty:
                    data = None
                if job.stop_reason():
                    stream.finish = job.stop_reason()
                    break
                while (kind := job.take_steer()) is not None:
                    if kind in ACTIONS and self.capabilities.steer:
                        steers.append(kind)
                while steers and stream.response_id:
                    threading.Thread(target=self._send_steer, args=(stream.response_id, steers.pop(0)),
                                     name="remote-steer", daemon=True).start()
                if data is None:
                    continue
                if isinstance(data, _Failure):
                    raise UserError(data.message)
                if data is _END or data == "[DONE]":
                    if not stream.finish and data is _END:
                        raise UserError(f"{self.endpoint}: the connection closed mid-response")
                    break
                for event in stream.feed(self._chunk(data)):
                    job.put(event)
                if isinstance(data, _Plain):
                    stream.finish = stream.finish or "stop"
                    break
        except UserError as e:
            job.put(Failed(first_line(str(e)) or f"{self.endpoint}: server error"))
            return
        except Exception as e:  # noqa: BLE001 - a reply no one foresaw still ends the job with one line
            job.put(Failed(f"{self.endpoint}: unreadable reply ({type(e).__name__})"))
            return
        finally:
            for sock in sockets:  # hang up: the reader thread ends, and the server sees the client go
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for event in stream.end():
            job.put(event)

    def _chunk(self, data: str) -> dict:
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            raise UserError(f"{self.endpoint}: sent a line that is not JSON") from None
        if not isinstance(chunk, dict):
            raise UserError(f"{self.endpoint}: sent a chunk that is not a JSON object")
        if chunk.get("error"):
            raise UserError(f"{self.endpoint}: {error_text(chunk['error']) or 'server error'}")
        return chunk


class _Failure:
    def __init__(self, message: str):
        self.message = message


class _Plain(str):
    """The whole body of a non-streamed answer."""


_END = object()


def first_line(text: str) -> str:
    """The first non-blank line of `text`, stripped and bounded ("" when there is none)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def error_text(error) -> str:
    """What a server's `error` field says: a string, or an object with a `message`."""
    if isinstance(error, dict):
        error = error.get("message")
    return first_line(encodable(error)) if isinstance(error, str) else ""


def error_message(raw) -> str:
    try:
        data = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return ""
    return error_text(data.get("error")) if isinstance(data, dict) else ""


def sse_data(response, limit: int = MAX_EVENT):
    """The `data:` payloads of a server-sent event stream, one per event (each at most `limit` bytes)."""
    lines, size = [], 0
    while True:
        line = response.readline(limit + 1)
        if not line:
            return
        size += len(line)
        if size > limit:
            raise ValueError(f"sent an event longer than {limit >> 20} MB")
        line = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            lines.append(line[5:].lstrip(" "))
        elif not line:
            if lines:
                yield "\n".join(lines)
            lines, size = [], 0


MAX_NAME = 200  # characters of a name the server reports (its draft model's)


def plausible_count(value) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_PLAUSIBLE_TOKENS:
        return value
    return None


_RESPONSE_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


class StreamState:
    """Deltas to events, and the client-side numbers for Stats. `content_is_answer`: the server sends
    all thinking in a field of its own (ours), so `content` is the answer from the start."""

    def __init__(self, start: float, content_is_answer: bool = False):
        self.start = start
        self.splitter: ReasoningSplitter | None = None  # made at the first content: see the module doc
        self.reasoning_field = content_is_answer  # the server sends thinking in a field of its own
        self.response_id = ""  # the response's `id`, where live steering requests go
        self.cut = False  # a Steered event closed the thinking
        self.stats = Stats()
        self.first = self.think_end = None
        self.finish = ""
        self.usage: dict | None = None

    def _count(self, event) -> None:
        if isinstance(event, Steered):
            return
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
        if not self.response_id and isinstance(chunk.get("id"), str) and _RESPONSE_ID.fullmatch(chunk["id"]):
            self.response_id = chunk["id"]
        if isinstance(chunk.get("stats"), dict):  # our cluster's extension: the server's own numbers
            theirs = chunk["stats"]
            if theirs.get("thinking_cut") in CUTS:
                self.stats.thinking_cut = theirs["thinking_cut"]
            for key in ("thinking_extended", "inserted_tokens", "kv_start", "draft_tokens", "draft_proposed",
                        "draft_accepted"):
                if plausible_count(theirs.get(key)) is not None:
                    setattr(self.stats, key, theirs[key])
            if theirs.get("kv_bits") in (0, 4, 8) and not isinstance(theirs["kv_bits"], bool):
                self.stats.kv_bits = theirs["kv_bits"]
            if theirs.get("draft_auto") in ("", "kept", "dropped"):
                self.stats.draft_auto = theirs["draft_auto"]
            draft = theirs.get("draft")
            if isinstance(draft, str) and len(draft) <= MAX_NAME and draft.isprintable():
                self.stats.draft = encodable(draft)
            peak = chunk["stats"].get("peak_memory_gb")
            if isinstance(peak, int) and not isinstance(peak, bool):
                peak = float(peak) if peak < MAX_PLAUSIBLE_GB else -1.0  # float() of 400 digits overflows
            plausible = isinstance(peak, float) and math.isfinite(peak) and 0 <= peak < MAX_PLAUSIBLE_GB
            self.stats.peak_memory_gb = peak if plausible else 0.0
        drafted = drafted_from(chunk.get(DRAFTED))  # our server's live acceptance of its draft
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or choice.get("message") or {}
            if not isinstance(delta, dict):
                continue
            steered = steered_from(delta.get(STEERED))
            if steered is not None:  # our server's mark: this thinking is the engine's, not the model's
                self.reasoning_field = True
                self.cut = self.cut or steered.closes
                out.append(steered)
                delta = {k: v for k, v in delta.items() if k not in REASONING_KEYS}
            for key in REASONING_KEYS:
                if isinstance(delta.get(key), str) and delta[key]:
                    self.reasoning_field = True
                    out.append(Think(encodable(delta[key]), 1))
            content = delta.get("content")
            if isinstance(content, str) and (content.strip() or self.splitter is not None):
                if self.splitter is None:
                    self.splitter = ReasoningSplitter(start_in_thinking=not self.reasoning_field)
                out.extend(self.splitter.feed(encodable(content)))
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
        for event in out:
            self._count(event)
        return [e if isinstance(e, Steered) else type(e)(e.text, 1) for e in out] + ([drafted] if drafted else [])

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
        s.thinking_closed = (bool(s.thinking_tokens and s.answer_tokens) or bool(self.splitter and self.splitter.closed)
                             or self.cut)
        usage = self.usage or {}
        prompt, completion = plausible_count(usage.get("prompt_tokens")), plausible_count(usage.get("completion_tokens"))
        if prompt is not None:
            s.prompt_tokens = prompt
        cached = usage.get("prompt_tokens_details")
        cached = plausible_count(cached.get("cached_tokens")) if isinstance(cached, dict) else None
        if cached is not None and cached <= s.prompt_tokens:
            s.prompt_cached_tokens = cached
        details = usage.get("completion_tokens_details")
        reasoning = plausible_count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
        if completion is not None and reasoning is not None and reasoning <= completion:
            s.thinking_tokens, s.answer_tokens = reasoning, completion - reasoning
        s.finish_reason = self.finish if self.finish in ("cancelled", "loop", "length") else "stop"
        return [*out, Done(s)]

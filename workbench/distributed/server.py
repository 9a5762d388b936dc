"""The OpenAI-compatible HTTP server rank 0 runs. Pure Python (stdlib http.server, no MLX).

`GET /v1/models`, `POST /v1/chat/completions` (SSE streaming or one JSON answer, thinking in
`reasoning_content`), and `GET /v1/cluster` (which layers each rank holds, its memory).
With `steers` (an engine behind it that steers the thinking), requests may carry thinking budgets and
effort, the engine's cuts are marked in the answer, and `POST /v1/chat/completions/<id>/steer` answers
now or extends a response that is streaming (`workbench.engine.openai_steering`); without, such requests
get 400.
Requests become `ChatRequest`s handed to `submit`, which returns a `Job` of engine events; the
rank-0 loop (or, in tests, a `ThreadEngine`) fills it. `submit` raising `RequestRefused` (e.g. a
prompt longer than the model's context) answers 400 with its message. With a token, every request
must carry `Authorization: Bearer <token>`. A `model` other than the one served gets 404
(`model_not_found`), as OpenAI answers; an absent one means the served model. A client that hangs up,
streaming or not, cancels its job.
"""

from __future__ import annotations

import hmac
import json
import queue
import select
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from workbench.engine.events import Answer, ChatRequest, Done, Drafted, Failed, Message, Sampling, Stats, Steered, Think
from workbench.engine.openai_steering import ACTIONS, DRAFTED, NAMES, STEERED, request_steering, steered_delta, text_field

MAX_BODY = 4 << 20
LOOPBACK = ("127.0.0.1", "::1", "localhost")
CLIENT_CHECK = 0.5  # seconds between checks that a waiting client is still connected


class RequestRefused(ValueError):
    """A well-formed request this model cannot take (400); `code` is OpenAI's error code."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


def _content(content, where: str) -> str:
    """A message's content: a string, or a list of text parts ([{"type": "text", "text": ...}])."""
    if not isinstance(content, list):
        return text_field(content, where)
    parts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise ValueError(f'{where}[{j}] must be a text part, {{"type": "text", "text": "..."}}')
        parts.append(text_field(part.get("text"), f"{where}[{j}].text"))
    return "".join(parts)


def request_from_openai(body) -> ChatRequest:
    """An OpenAI chat request as a ChatRequest; ValueError names what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ValueError("'messages' must be a non-empty list")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"messages[{i}]: needs a role of system, user or assistant")
        content = _content("" if m.get("content") is None else m["content"], f"messages[{i}].content")
        thinking = m.get("reasoning_content")
        thinking = text_field(thinking, f"messages[{i}].reasoning_content") if thinking is not None else None
        messages.append(Message(m["role"], content, thinking))

    def number(key, kind, low, high):
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"'{key}' must be a number from {low} to {high}")
        return kind(value)

    max_tokens = number("max_completion_tokens", int, 1, 1 << 20) or number("max_tokens", int, 1, 1 << 20)
    sampling = Sampling(temperature=number("temperature", float, 0, 10), top_p=number("top_p", float, 0, 1),
                        max_tokens=max_tokens, seed=number("seed", int, 0, 2**32 - 1))
    return ChatRequest(tuple(messages), sampling, **request_steering(body))


def finish_reason(stats: Stats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


def usage(stats: Stats) -> dict:
    """OpenAI's usage: `prompt_tokens_details.cached_tokens` are prompt tokens a kept KV cache held."""
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.generated_tokens,
            "total_tokens": stats.prompt_tokens + stats.generated_tokens,
            "prompt_tokens_details": {"cached_tokens": stats.prompt_cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": stats.thinking_tokens}}


def wants_usage_chunk(body: dict) -> bool:
    """`stream_options.include_usage`: a last chunk, before [DONE], with no choices and the usage."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], submit: Callable[[ChatRequest], object], model_id: str,
                 token: str | None = None, cluster: Callable[[], list] = list, steers: bool = False):
        if address[0] not in LOOPBACK and not token:
            raise ValueError(f"binding {address[0]} (not loopback) needs a token: anyone on the network could use it")
        self.submit, self.model_id, self.token, self.cluster = submit, model_id, token, cluster
        self.steers = steers  # the engine behind `submit` honours steering requests (budgets, answer now)
        self.live: dict = {}  # response id -> its job while it is being answered (steers only)
        self.failure: str | None = None  # set when the cluster is lost: every request gets it
        self.active: set = set()
        self.lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request, client_address) -> None:
        """One line, no traceback: a client that left is normal; anything else is named."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return
        text = str(error).strip().splitlines()
        print(f"workbench: server: request from {client_address[0]} failed: {type(error).__name__}"
              + (f": {text[0]}" if text else ""), file=sys.stderr, flush=True)

    def fail(self, message: str) -> None:
        """The cluster is gone: end every open response with this error, refuse new ones."""
        self.failure = message
        with self.lock:
            for job in list(self.active):
                job.put(Failed(message))


class Handler(BaseHTTPRequestHandler):
    server: ChatServer
    server_version = "workbench"
    timeout = 60  # seconds a client may take to send its request (a stalled one must not pin a thread)

    def log_message(self, format, *args) -> None:  # quiet: the rank's stdout is the user's console
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": code}})

    def _client_gone(self) -> bool:
        """The client closed its end (a readable socket with nothing to read), or it broke."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _allowed(self) -> bool:
        if self.server.token:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.server.token}".encode()):
                self._error(401, "missing or wrong bearer token", "authentication_error")
                return False
        if self.server.failure:
            self._error(503, self.server.failure, "server_error")
            return False
        return True

    def do_GET(self) -> None:
        if not self._allowed():
            return
        path = self.path.split("?")[0].rstrip("/")
        if path == "/v1/models":
            self._json(200, {"object": "list", "data": [
                {"id": self.server.model_id, "object": "model", "created": 0, "owned_by": "workbench",
                 "workbench": {"steer": self.server.steers}}]})
        elif path == "/v1/cluster":
            self._json(200, {"model": self.server.model_id, "ranks": self.server.cluster()})
        else:
            self._error(404, f"no such endpoint: {path}")

    def do_POST(self) -> None:
        if not self._allowed():
            return
        path = self.path.split("?")[0].rstrip("/")
        if path.startswith("/v1/chat/completions/") and path.endswith("/steer"):
            self._steer(path[len("/v1/chat/completions/"):-len("/steer")])
            return
        if path != "/v1/chat/completions":
            self._error(404, f"no such endpoint: {self.path}")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"the body must be 1 byte to {MAX_BODY >> 20} MB")
            body = json.loads(self.rfile.read(length))
            request = request_from_openai(body)
        except RecursionError:
            self._error(400, "the body is nested too deeply")
            return
        except (ValueError, UnicodeDecodeError) as e:
            self._error(400, str(e).splitlines()[0] if str(e) else "bad request")
            return
        if not self.server.steers and request_steering(body):
            given = ", ".join(f"'{name}'" for name in NAMES if body.get(name) is not None)
            self._error(400, f"this server cannot steer the thinking: drop {given}")
            return
        model = body.get("model")
        if model not in (None, "", self.server.model_id):
            self._error(404, f"The model `{str(model)[:200]}` does not exist: this server serves "
                             f"`{self.server.model_id}`", code="model_not_found")
            return
        try:
            job = self.server.submit(request)
        except RequestRefused as e:
            self._error(400, str(e), code=e.code)
            return
        response_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        with self.server.lock:
            self.server.active.add(job)
            if self.server.steers:
                self.server.live[response_id] = job
        try:
            if body.get("stream"):
                self._stream(job, response_id, wants_usage_chunk(body))
            else:
                self._complete(job, response_id)
        finally:
            with self.server.lock:
                self.server.active.discard(job)
                self.server.live.pop(response_id, None)

    def _steer(self, response_id: str) -> None:
        """`{"action": "answer_now" | "extend"}` for a response that is streaming."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if not 0 < length <= 4096:
                raise ValueError("the body must be 1 byte to 4 KB")
            action = json.loads(self.rfile.read(length)).get("action")
        except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
            action = None
        if action not in ACTIONS:
            self._error(400, f"'action' must be one of {', '.join(ACTIONS)}")
            return
        with self.server.lock:
            job = self.server.live.get(response_id)
        if job is None:
            self._error(404, f"no response {response_id[:100]} is streaming here" if self.server.steers
                        else "this server cannot steer the thinking")
            return
        if action == "answer_now":
            job.answer_now()
        else:
            job.extend()
        self._json(200, {"id": response_id, "action": action})

    def _events(self, job):
        """The job's events; a client that hangs up meanwhile cancels it (the job still ends on its own)."""
        checked = time.monotonic()
        while True:
            try:
                event = job.get(timeout=CLIENT_CHECK)
            except queue.Empty:
                if self.server.failure:
                    yield Failed(self.server.failure)
                    return
                event = None
            if time.monotonic() - checked >= CLIENT_CHECK or event is None:
                checked = time.monotonic()
                if self._client_gone():
                    job.cancel("cancelled")
                    return
            if event is None:
                continue
            yield event
            if isinstance(event, (Done, Failed)):
                return

    def _complete(self, job, response_id: str) -> None:
        thinking, answer, steered = [], [], []
        for event in self._events(job):
            if isinstance(event, (Think, Steered)):
                thinking.append(event.text)
                if isinstance(event, Steered):
                    steered.append(steered_delta(event)[STEERED])
            elif isinstance(event, Answer):
                answer.append(event.text)
            elif isinstance(event, Failed):
                self._error(503, event.message, "server_error")
            elif isinstance(event, Done):
                message = {"role": "assistant", "content": "".join(answer)}
                if thinking:
                    message["reasoning_content"] = "".join(thinking)
                if steered:
                    message[STEERED] = steered
                self._json(200, {
                    "id": response_id, "object": "chat.completion", "created": int(time.time()),
                    "model": self.server.model_id,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(event.stats)}],
                    "usage": usage(event.stats), "stats": event.stats.to_dict()})

    def _stream(self, job, response_id: str, usage_chunk: bool = False) -> None:
        head = {"id": response_id, "object": "chat.completion.chunk",
                "created": int(time.time()), "model": self.server.model_id}

        def send(payload) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()

        def chunk(delta: dict, reason: str | None = None, **extra) -> dict:
            return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}

        try:
            self.send_response(200)  # a client gone already fails here: its job is cancelled below too
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            send(chunk({"role": "assistant", "content": ""}))
            for event in self._events(job):
                if isinstance(event, Think):
                    send(chunk({"reasoning_content": event.text}))
                elif isinstance(event, Answer):
                    send(chunk({"content": event.text}))
                elif isinstance(event, Steered):
                    send(chunk(steered_delta(event)))
                elif isinstance(event, Drafted):
                    send({**head, "choices": [], DRAFTED: {"accepted": event.accepted, "proposed": event.proposed}})
                elif isinstance(event, Failed):
                    send({"error": {"message": event.message, "type": "server_error"}})
                elif isinstance(event, Done):
                    send(chunk({}, finish_reason(event.stats), usage=usage(event.stats), stats=event.stats.to_dict()))
                    if usage_chunk:
                        send({**head, "choices": [], "usage": usage(event.stats)})
                    send("[DONE]")
        except OSError:  # the client went away (a reset, a broken pipe, ...)
            pass
        finally:  # however the stream ended early, stop generating for nobody
            if not job.finished.is_set():
                job.cancel("cancelled")

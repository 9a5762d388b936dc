"""Our OpenAI-compatible server against hostile and careless clients, with a scripted engine (no MLX):
malformed bodies get 400 (never a traceback), an unknown model 404, a client that hangs up cancels
its job, and rank 0's request preparation keeps prompts and max_tokens within the model's context."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from workbench.distributed.rank import prepare
from workbench.distributed.server import ChatServer, RequestRefused, request_from_openai
from workbench.engine.events import ChatRequest, Done, Message, Sampling, Stats, Think
from workbench.engine.profiles import Profile
from workbench.engine.job import Job


class SlowEngine:
    """Each job thinks a word every 10 ms until cancelled (then Done, like a real engine) or 10,000 words."""

    def __init__(self, refuse: str | None = None):
        self.jobs: list[Job] = []
        self.refuse = refuse

    def submit(self, request):
        if self.refuse:
            raise RequestRefused(self.refuse, "context_length_exceeded")
        job = Job()
        self.jobs.append(job)

        def run():
            for _ in range(10_000):
                if job.stop_reason():
                    break
                job.put(Think("word ", 1))
                time.sleep(0.01)
            job.put(Done(Stats(finish_reason=job.stop_reason() or "length")))

        threading.Thread(target=run, daemon=True).start()
        return job


@pytest.fixture
def server():
    engine = SlowEngine()
    server = ChatServer(("127.0.0.1", 0), lambda r: engine.submit(r), "served-model")
    server.engine = engine
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def post(server, body: bytes, read: bool = True) -> tuple[int, dict] | socket.socket:
    sock = socket.create_connection(server.server_address, timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    if not read:
        return sock
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def wait_for(condition, seconds: float = 30) -> bool:
    """Bounded polling (only to avoid hanging; the assertion is on the condition)."""
    for _ in range(int(seconds * 10)):
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def user(content) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": content}]}).encode()


@pytest.mark.parametrize("body, expected", [
    (user([{"type": "text", "text": 5}]), "messages[0].content[0].text must be a string"),
    (user(["a", "b"]), "messages[0].content[0] must be a text part"),
    (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "lone surrogate"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nested too deeply", id="100000-deep"),
    (user(5), "messages[0].content must be a string"),
])
def test_malformed_bodies_get_400_and_no_traceback(server, body, expected, capfd):
    status, reply = post(server, body)
    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert expected in reply["error"]["message"]
    assert server.engine.jobs == []  # nothing reached the engine
    assert "Traceback" not in capfd.readouterr().err


def test_text_parts_are_joined():
    request = request_from_openai({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                             {"type": "text", "text": "b"}]}]})
    assert request.messages[0].content == "ab"


def test_unknown_model_is_404_and_the_served_one_or_none_is_accepted(server):
    status, reply = post(server, json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}).encode())
    assert status == 404 and reply["error"]["code"] == "model_not_found"
    assert "gpt-4o" in reply["error"]["message"] and "served-model" in reply["error"]["message"]
    socks = []
    for model in ("served-model", None):
        body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 3, **({"model": model} if model else {})}
        socks.append(post(server, json.dumps(body).encode(), read=False))
    assert wait_for(lambda: len(server.engine.jobs) == 2)
    for sock in socks:
        sock.close()


def test_a_request_the_engine_refuses_is_400_with_its_message():
    engine = SlowEngine(refuse="This model's maximum context length is 64 tokens.")
    server = ChatServer(("127.0.0.1", 0), engine.submit, "m")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, reply = post(server, user("x"))
    finally:
        server.shutdown()
    assert status == 400 and reply["error"]["code"] == "context_length_exceeded"
    assert "maximum context length is 64" in reply["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_hangs_up_cancels_its_job(server, stream, capfd):
    sock = post(server, json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": stream}).encode(), read=False)
    assert wait_for(lambda: server.engine.jobs)
    job = server.engine.jobs[0]
    job.get(timeout=30)  # generating
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # leave rudely (RST)
    sock.close()
    assert job.finished.wait(timeout=30), "the server kept generating for a client that left"
    assert job.stop_reason() == "cancelled"
    time.sleep(0.5)  # let the handler thread finish writing to nobody
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_before_the_reply_starts_cancels_its_job(stream, capfd):
    """The engine takes the request; the client resets the connection before the server has written a byte."""
    engine, left = SlowEngine(), threading.Event()

    def submit(request):
        job = engine.submit(request)
        left.wait(30)
        return job

    server = ChatServer(("127.0.0.1", 0), submit, "served-model")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sock = post(server, json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": stream}).encode(),
                    read=False)
        assert wait_for(lambda: engine.jobs)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        time.sleep(0.2)  # the reset reaches the server's socket before it writes
        left.set()
        assert engine.jobs[0].finished.wait(timeout=30), "the server kept generating for a client that left"
        assert engine.jobs[0].stop_reason() == "cancelled"
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capfd.readouterr().err


def test_the_next_request_is_answered_after_a_client_leaves(server):
    sock = post(server, user("first"), read=False)
    assert wait_for(lambda: server.engine.jobs)
    sock.close()
    server.engine.jobs[0].finished.wait(timeout=30)
    body = json.dumps({"messages": [{"role": "user", "content": "x"}], "stream": False}).encode()
    sock = post(server, body, read=False)
    assert wait_for(lambda: len(server.engine.jobs) == 2)
    server.engine.jobs[1].cancel("length")  # end it: the reply comes back complete
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    reply = json.loads(data.partition(b"\r\n\r\n")[2])
    assert reply["choices"][0]["message"]["reasoning_content"].startswith("word ")


# ---- rank 0's preparation: the prompt and max_tokens within the model's context ------------------

class Loaded:
    """Just what `prepare` reads: a tokenizer of one token per character, a config, a profile."""

    class tokenizer:
        bos_token = None

        @staticmethod
        def apply_chat_template(messages, add_generation_prompt, tokenize):
            return "".join(m["content"] for m in messages) + "|"

        @staticmethod
        def encode(text, add_special_tokens=True):
            return [ord(c) for c in text]

    config = {"max_position_embeddings": 64}
    profile = Profile(max_tokens=1000)


def test_prepare_keeps_prompt_and_completion_within_the_context():
    message = prepare(Loaded, ChatRequest((Message("user", "x" * 10),)), 64)
    prompt_tokens = len("x" * 10 + "|<think>\n")
    assert message["sampling"]["max_tokens"] == 64 - prompt_tokens  # the profile's 1000, capped
    assert prepare(Loaded, ChatRequest((Message("user", "x"),), Sampling(max_tokens=5)), 64)["sampling"]["max_tokens"] == 5
    with pytest.raises(RequestRefused, match="maximum context length is 64 tokens") as refused:
        prepare(Loaded, ChatRequest((Message("user", "x" * 10),), Sampling(max_tokens=1 << 20)), 64)
    assert refused.value.code == "context_length_exceeded"
    with pytest.raises(RequestRefused, match=r"\d+ in the messages"):
        prepare(Loaded, ChatRequest((Message("user", "x" * 100),)), 64)
    # the context the server runs within, when set smaller than the model's; unknown: the profile's max_tokens
    assert prepare(Loaded, ChatRequest((Message("user", "x" * 10),)), 32)["sampling"]["max_tokens"] == 32 - prompt_tokens
    with pytest.raises(RequestRefused, match="maximum context length is 16 tokens"):
        prepare(Loaded, ChatRequest((Message("user", "x" * 10),)), 16)
    assert prepare(Loaded, ChatRequest((Message("user", "x" * 100),)), None)["sampling"]["max_tokens"] == 1000

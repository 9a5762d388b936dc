"""The remote engine against our OpenAI-compatible server (backed by a ThreadEngine) and fake servers
speaking the other reasoning dialects (mlx_lm.server's `reasoning`, Ollama's `thinking`, `<think>` in content)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbench.distributed.server import ChatServer, request_from_openai
from workbench.engine.events import (Answer, ChatRequest, Done, Failed, Loaded, Message, Sampling, Steered, Think,
                                     merge_deltas)
from workbench.engine.remote import RemoteEngine
from workbench.engine.thread import ThreadEngine
from workbench.errors import UserError

QUESTION = "What is 12+30?"


@pytest.fixture(scope="module")
def served(taught_model):
    """Our server on a free port, answering with the taught model through a local engine."""
    engine = ThreadEngine()
    _, _, loaded = engine.load(taught_model).collect()
    assert isinstance(loaded, Loaded)
    server = ChatServer(("127.0.0.1", 0), engine.generate, loaded.info.name, token="s3cret", steers=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", engine
    server.shutdown()
    engine.close()


def test_remote_engine_streams_both_phases_like_the_local_engine(served):
    url, local = served
    remote = RemoteEngine(url, token="s3cret")
    _, _, loaded = remote.load().collect()
    assert isinstance(loaded, Loaded) and loaded.info.location == url
    request = ChatRequest.single(QUESTION, Sampling(temperature=0))
    thinking, answer, done = remote.generate(request).collect()
    local_thinking, local_answer, _ = local.generate(request).collect()
    assert isinstance(done, Done), done
    assert (thinking, answer) == (local_thinking, local_answer)
    assert "12+30" in thinking and "\\boxed{42}" in answer
    assert done.stats.thinking_tokens > 0 and done.stats.answer_tokens > 0 and done.stats.thinking_closed
    assert done.stats.finish_reason == "stop"
    assert done.stats.peak_memory_gb > 0  # the server's number, carried in our `stats` extension


def test_token_is_checked_on_every_request(served):
    url, _ = served
    _, _, failed = RemoteEngine(url, token="wrong").load().collect()
    assert isinstance(failed, Failed) and "401" in failed.message and "token" in failed.message
    remote = RemoteEngine(url, token="s3cret")
    remote.load().collect()
    remote.token = None  # the same client without the token: refused mid-session too
    *_, failed = remote.generate(ChatRequest.single(QUESTION)).collect()
    assert isinstance(failed, Failed) and "401" in failed.message


def test_non_streaming_answer_carries_reasoning_content(served):
    import urllib.request

    url, _ = served
    body = json.dumps({"messages": [{"role": "user", "content": QUESTION}], "temperature": 0}).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", body, {"Authorization": "Bearer s3cret"})
    reply = json.loads(urllib.request.urlopen(req, timeout=60).read())
    message = reply["choices"][0]["message"]
    assert "12+30" in message["reasoning_content"] and "\\boxed{42}" in message["content"]
    assert reply["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0


def test_server_refuses_to_bind_beyond_loopback_without_a_token():
    with pytest.raises(ValueError, match="token"):
        ChatServer(("0.0.0.0", 0), lambda r: None, "m")


@pytest.mark.parametrize("body, message", [
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_are_named(body, message):
    with pytest.raises(ValueError, match=message):
        request_from_openai(body)


# ---- other servers' dialects -------------------------------------------------------------------

def fake_server(chunks: list, close_early: bool = False, models: bytes | None = None, plain: dict | None = None,
                models_status: int = 200, stall: threading.Event | None = None):
    """A server that answers every chat request with these SSE chunks (dicts or raw strings), or with
    `plain` as one JSON body (a server that ignores `stream: true`). With `stall`, it sends the chunks
    and then waits for that event before anything else."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = json.dumps({"data": [{"id": "fake-model"}]}).encode() if models is None else models
            self.send_response(models_status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            server.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if plain is not None:
                data = json.dumps(plain).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for c in chunks:
                self.wfile.write(f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode())
            if stall is not None:
                self.wfile.flush()
                stall.wait(120)
            if not close_early:
                self.wfile.write(b"data: [DONE]\n\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def delta(reason=None, **d):
    return {"choices": [{"index": 0, "delta": d, "finish_reason": reason}]}


@pytest.mark.parametrize("key", ["reasoning", "thinking", "reasoning_content"])
def test_reasoning_fields_of_other_servers(key):
    server = fake_server([delta(**{key: "let me see. "}), delta(**{key: "4."}), delta(content="It is 4."),
                          delta("stop"), {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 9,
                                                                   "completion_tokens_details": {"reasoning_tokens": 5}}}])
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    thinking, answer, done = remote.generate(ChatRequest.single("2+2?")).collect()
    server.shutdown()
    assert (thinking, answer) == ("let me see. 4.", "It is 4.")
    assert (done.stats.prompt_tokens, done.stats.thinking_tokens, done.stats.answer_tokens) == (7, 5, 4)


def test_think_tags_in_content_are_split():
    server = fake_server([delta(content="<thi"), delta(content="nk>hmm, 2+2</th"), delta(content="ink>4"), delta("length")])
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    thinking, answer, done = remote.generate(ChatRequest.single("2+2?")).collect()
    server.shutdown()
    assert (thinking, answer, done.stats.finish_reason) == ("hmm, 2+2", "4", "length")


def generate_from(server, request=None):
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    events = list(remote.generate(request or ChatRequest.single("2+2?")))
    server.shutdown()
    return events


def test_thinking_opened_by_the_servers_template_is_thinking():
    """R1 distills behind a server without a reasoning parser: `...thinking...</think>answer`, no opening tag."""
    events = generate_from(fake_server([delta(content="let me add. "), delta(content="2+2=4.</th"),
                                        delta(content="ink>\n\nThe answer is 4."), delta("stop")]))
    thinking = "".join(e.text for e in events if isinstance(e, Think))
    answer = "".join(e.text for e in events if isinstance(e, Answer))
    assert (thinking, answer) == ("let me add. 2+2=4.", "The answer is 4.")
    stats = events[-1].stats
    assert (stats.thinking_tokens, stats.answer_tokens, stats.thinking_closed) == (2, 1, True)
    assert stats.thinking_time > 0 and stats.answer_time > 0


def test_a_server_that_ignores_stream_is_read():
    reply = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "reasoning_content": "2 and 2 make 4.", "content": "It is 4."}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 5}}}
    events = generate_from(fake_server([], plain=reply))
    assert isinstance(events[-1], Done), events[-1]
    assert [(type(e), e.text) for e in events[:-1]] == [(Think, "2 and 2 make 4."), (Answer, "It is 4.")]
    stats = events[-1].stats
    assert (stats.prompt_tokens, stats.thinking_tokens, stats.answer_tokens, stats.finish_reason) == (7, 5, 4, "stop")


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -5, "completion_tokens": -3, "completion_tokens_details": {"reasoning_tokens": -9}},
    {"prompt_tokens": 10**30, "completion_tokens": 10**30, "completion_tokens_details": {"reasoning_tokens": 1}},
    {"prompt_tokens": 1e30, "completion_tokens": 1e30, "completion_tokens_details": {"reasoning_tokens": 1e30}},
    {"prompt_tokens": 3, "completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 5}},
])
def test_absurd_usage_is_not_shown_as_fact(usage):
    events = generate_from(fake_server([delta(reasoning="hm. "), delta(reasoning="yes. "), delta(content="ok"),
                                        delta("stop"), {"choices": [], "usage": usage,
                                                        "stats": {"peak_memory_gb": -2}}]))
    stats = events[-1].stats
    assert (stats.thinking_tokens, stats.answer_tokens) == (2, 1)  # our own count of the deltas
    assert stats.prompt_tokens in (0, 3) and stats.peak_memory_gb == 0


@pytest.mark.parametrize("theirs, expected", [
    ({"kv_bits": 8, "kv_start": 0, "draft": "r1-1.5b", "draft_tokens": 3, "draft_proposed": 30, "draft_accepted": 21,
      "draft_auto": "kept"}, (8, 0, "r1-1.5b", 3, 30, 21, "kept")),
    ({"kv_bits": 5, "kv_start": -1, "draft": "\x1b]52;c;eA==\x07", "draft_tokens": 10**30, "draft_proposed": "30",
      "draft_accepted": 1e300, "draft_auto": "\x1b[2J"}, (0, 0, "", 0, 0, 0, "")),
    ({"kv_bits": True, "draft": "x" * 100_000, "draft_proposed": True}, (0, 0, "", 0, 0, 0, "")),
])
def test_the_servers_decoding_stats_are_kept_only_when_plausible(theirs, expected):
    """Our server's stats say how it decoded (KV bits, the draft and its acceptance); from any server, an
    escape sequence, an absurd count or a flag of the wrong type is not shown as fact."""
    events = generate_from(fake_server([delta(reasoning="hm. "), delta(content="ok"), delta("stop"),
                                        {"choices": [], "stats": theirs}]))
    s = events[-1].stats
    assert (s.kv_bits, s.kv_start, s.draft, s.draft_tokens, s.draft_proposed, s.draft_accepted, s.draft_auto) == expected


def test_a_servers_live_draft_acceptance_becomes_drafted_events_when_plausible():
    from workbench.engine.events import Drafted

    marks = [{"accepted": 3, "proposed": 5}, {"accepted": 6, "proposed": 5}, {"accepted": -1, "proposed": 5},
             {"accepted": True, "proposed": 5}, {"accepted": "3", "proposed": 5}, [3, 5], None]
    events = generate_from(fake_server([delta(reasoning="hm. "), *({"choices": [], "workbench_drafted": m} for m in marks),
                                        delta(content="ok"), delta("stop")]))
    assert [e for e in events if isinstance(e, Drafted)] == [Drafted(3, 5)]
    assert (events[-1].stats.thinking_tokens, events[-1].stats.answer_tokens) == (1, 1)  # not counted as tokens


@pytest.mark.parametrize("chunks, close_early, expected", [
    ([delta(content="half an ans")], True, "closed mid-response"),
    (["{not json"], False, "not JSON"),
    ([delta(content="x"), {"error": {"message": "lost rank 1 (mac-b)"}}], True, "lost rank 1 (mac-b)"),
])
def test_broken_streams_fail_with_one_line(chunks, close_early, expected):
    server = fake_server(chunks, close_early)
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    *_, last = remote.generate(ChatRequest.single("hi")).collect()
    server.shutdown()
    assert isinstance(last, Failed) and expected in last.message and "\n" not in last.message


@pytest.mark.parametrize("chunk", [
    {"error": "   "}, {"error": {"message": "\n"}}, {"error": {"message": 5}}, {"error": None}, {"choices": 5},
    {"choices": [{"delta": {"content": 5, "reasoning": ["x"]}, "finish_reason": {"a": 1}}]},
    {"choices": [], "stats": {"peak_memory_gb": int("9" * 400)}}, {"choices": [], "stats": {"peak_memory_gb": 1e308}},
    {"choices": [], "usage": {"prompt_tokens": int("9" * 400)}},
    pytest.param("[" * 100_000 + "]" * 100_000, id="100000-deep"),
])
def test_hostile_events_end_the_job_with_one_line(chunk):
    """Whatever the server sends, the job ends (Done or Failed with one non-blank line): nothing hangs."""
    server = fake_server([delta(reasoning="hm. "), chunk, delta(content="ok"), delta("stop")])
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    job = remote.generate(ChatRequest.single("hi"))
    try:
        assert job.finished.wait(timeout=60), "the job never ended"
        *_, last = job.collect()
    finally:
        server.shutdown()
    assert isinstance(last, (Done, Failed)), last
    if isinstance(last, Failed):
        assert last.message.strip() and "\n" not in last.message and len(last.message) < 600
    else:
        assert last.stats.peak_memory_gb == 0 and last.stats.prompt_tokens == 0


@pytest.mark.parametrize("body", [b'{"error": "   "}', b'{"error": {"message": "\\n"}}', b"", b"\x00" * 10])
def test_a_blank_error_on_the_model_list_is_one_line(body):
    server = fake_server([], models=body, models_status=500)
    *_, last = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}").load().collect()
    server.shutdown()
    assert isinstance(last, Loaded), last  # a server without a working model list: ask for its default model
    server = fake_server([], models=body, models_status=500)
    with pytest.raises(UserError) as error:  # /v1/cluster (our own) says what went wrong, in one line
        RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}").cluster()
    server.shutdown()
    assert "HTTP 500" in str(error.value) and "\n" not in str(error.value)


def test_lone_surrogates_in_deltas_become_replacement_characters_and_the_run_is_saved(workbench_home):
    from conftest import workbench_env

    chunks = [delta(reasoning="hm \ud800. "), delta(content="a\udfffb"), delta("stop")]  # JSON: "\ud800" escapes
    server = fake_server(chunks)
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    thinking, answer, done = remote.generate(ChatRequest.single("hi")).collect()
    assert (thinking, answer) == ("hm \ufffd. ", "a\ufffdb") and isinstance(done, Done)
    out = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--endpoint",
                          f"http://127.0.0.1:{server.server_address[1]}"], capture_output=True, text=True, timeout=120,
                         env=workbench_env(WORKBENCH_HOME=str(workbench_home)))
    server.shutdown()
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    listed = subprocess.run([sys.executable, "-m", "workbench", "sessions", "list"], capture_output=True, text=True,
                            timeout=120, env=workbench_env(WORKBENCH_HOME=str(workbench_home)))
    assert listed.returncode == 0 and "interrupted" not in listed.stdout and "hi" in listed.stdout, listed.stdout


def test_a_2_mb_event_is_read():
    big = "7" * 2_000_000
    server = fake_server([delta(reasoning="long. "), delta(content=big), delta("stop")])
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    thinking, answer, done = remote.generate(ChatRequest.single("hi")).collect()
    server.shutdown()
    assert isinstance(done, Done), done
    assert answer == big


def test_cancel_acts_at_once_on_a_server_that_stalls_and_keeps_the_stats():
    """Headers and one delta, then nothing: cancel must not wait for the network (the timeout is 120 s)."""
    stall = threading.Event()
    server = fake_server([delta(reasoning="thinking hard. ")], stall=stall)
    try:
        remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
        remote.load().collect()
        job = remote.generate(ChatRequest.single("hi"))
        assert job.get(timeout=60).text == "thinking hard. "
        job.cancel()
        assert job.finished.wait(timeout=10), "cancel waited on the network"
        *_, done = job.collect()
        assert isinstance(done, Done) and done.stats.finish_reason == "cancelled"
        assert done.stats.thinking_tokens == 1
    finally:
        stall.set()
        server.shutdown()


def test_a_stalled_stream_times_out_with_one_line():
    stall = threading.Event()
    server = fake_server([delta(reasoning="thinking hard. ")], stall=stall)
    try:
        remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}", timeout=1)
        remote.load().collect()
        *_, last = remote.generate(ChatRequest.single("hi")).collect()
    finally:
        stall.set()
        server.shutdown()
    assert isinstance(last, Failed) and "no answer for 1 s" in last.message


def silent_server() -> socket.socket:
    """Accepts connections (the kernel does, from the backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_load_returns_at_once_and_times_out_on_a_server_that_never_answers():
    listener = silent_server()
    try:
        remote = RemoteEngine(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=1)
        job = remote.load()  # returns a Job at once: the caller (the app's UI thread) is not held
        assert not job.finished.is_set()
        assert job.finished.wait(timeout=30)
        *_, last = job.collect()
        assert isinstance(last, Failed) and "no answer for 1 s" in last.message and "\n" not in last.message
    finally:
        listener.close()


def test_run_ctrl_c_on_a_stalled_server_stops_at_once_and_prints_the_stats(workbench_home):
    import signal
    import time

    from conftest import workbench_env

    stall = threading.Event()
    server = fake_server([delta(reasoning="thinking hard. ")], stall=stall)
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "run", "hi", "--endpoint",
                             f"http://127.0.0.1:{server.server_address[1]}", "--no-save"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=workbench_env(WORKBENCH_HOME=str(workbench_home)))
    try:
        assert proc.stdout.readline().strip() == "Thinking"  # streaming has begun
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)  # the stalled stream's timeout is 120 s
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        stall.set()
        server.shutdown()
    assert proc.returncode == 130, err
    assert "thinking hard." in out and "cancelled" in out and "Traceback" not in err


def test_server_error_text_reaches_the_terminal_escaped(workbench_home):
    from conftest import workbench_env

    server = fake_server([delta(reasoning="hm. "), {"error": {"message": "boom \x1b]0;pwned\x07\x1b[2J gone"}}])
    out = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--endpoint",
                          f"http://127.0.0.1:{server.server_address[1]}", "--no-save"], capture_output=True,
                         text=True, timeout=120, env=workbench_env(WORKBENCH_HOME=str(workbench_home)))
    server.shutdown()
    assert out.returncode == 1 and "boom" in out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


def test_a_server_with_a_broken_model_list_still_answers():
    """mlx_lm.server answers /v1/models with an empty body when it has no Hugging Face cache."""
    server = fake_server([delta(reasoning="hm. "), delta(content="ok"), delta("stop")], models=b"")
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    assert remote.load().collect()[2].info.name == "default_model"
    thinking, answer, _ = remote.generate(ChatRequest.single("hi", Sampling(temperature=0.5))).collect()
    server.shutdown()
    assert (thinking, answer) == ("hm. ", "ok")
    assert server.requests[0]["model"] == "default_model" and server.requests[0]["temperature"] == 0.5


def test_unreachable_endpoint_and_unknown_model():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    *_, failed = RemoteEngine(f"http://127.0.0.1:{port}").load().collect()
    assert isinstance(failed, Failed) and "cannot reach" in failed.message
    server = fake_server([])
    *_, failed = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}").load("other").collect()
    server.shutdown()
    assert isinstance(failed, Failed) and "fake-model" in failed.message


def test_workbench_run_with_endpoint(served, workbench_home):
    url, _ = served
    from conftest import workbench_env

    out = subprocess.run([sys.executable, "-m", "workbench", "run", QUESTION, "--endpoint", url, "--temp", "0", "--json",
                          "--no-save"], capture_output=True, text=True, timeout=120,
                         env=workbench_env(WORKBENCH_TOKEN="s3cret", WORKBENCH_HOME=str(workbench_home)))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert "think" in kinds and "answer" in kinds and kinds[-1] == "done"
    assert "\\boxed{42}" in "".join(e["text"] for e in events if e["type"] == "answer")


def test_cancel_reaches_the_server(tiny_model):
    """The client cancels: the remote engine hangs up, and the server cancels the job it was streaming."""
    engine = ThreadEngine()
    engine.load(tiny_model).collect()
    jobs = []

    def submit(request):
        jobs.append(engine.generate(request))
        return jobs[-1]

    server = ChatServer(("127.0.0.1", 0), submit, "tiny")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
        remote.load().collect()
        job = remote.generate(ChatRequest.single("go on", Sampling(temperature=0, max_tokens=10**6)))
        job.get(timeout=60)  # streaming
        job.cancel()
        *_, done = job.collect()
        assert isinstance(done, Done) and done.stats.finish_reason == "cancelled"
        jobs[0].finished.wait(timeout=60)  # bounded: the server-side job ends once the server sees the hang-up
        assert jobs[0].stop_reason() == "cancelled"
    finally:
        server.shutdown()
        engine.close()


# ---- steering through our server -------------------------------------------------------------------

def steered_remote(url: str) -> RemoteEngine:
    remote = RemoteEngine(url, token="s3cret")
    remote.load().collect()
    assert remote.capabilities.steer  # our server, over an engine that steers, says so
    return remote


@pytest.mark.parametrize("steering", [{"max_thinking_tokens": 5}, {"max_thinking_tokens": 0}, {"effort": "low"},
                                      {"min_thinking_tokens": 80, "max_thinking_tokens": 100}])
def test_steering_through_our_server_gives_the_local_engines_events_and_stats(served, steering):
    url, local = served
    request = ChatRequest.single(QUESTION, Sampling(temperature=0, max_tokens=200))
    request = ChatRequest(request.messages, request.sampling, **steering)
    remote_events = merge_deltas(steered_remote(url).generate(request))
    local_events = merge_deltas(local.generate(request))
    assert remote_events[:-1] == local_events[:-1]  # Steered events (kind, text, tokens) included
    assert any(isinstance(e, Steered) for e in local_events) == (steering != {"effort": "low"})
    remote_stats, local_stats = remote_events[-1].stats, local_events[-1].stats
    for key in ("thinking_tokens", "answer_tokens", "thinking_cut", "thinking_extended", "inserted_tokens",
                "thinking_closed", "finish_reason"):
        assert getattr(remote_stats, key) == getattr(local_stats, key), key


def test_remote_budget_cut_is_marked_and_counted(served):
    url, _ = served
    request = ChatRequest((Message("user", QUESTION),), Sampling(temperature=0, max_tokens=200), max_thinking_tokens=5)
    events = list(steered_remote(url).generate(request))
    cut = [e for e in events if isinstance(e, Steered)]
    assert [e.kind for e in cut] == ["budget"] and "limited time" in cut[0].text and cut[0].tokens > 0
    done = events[-1]
    assert done.stats.thinking_cut == "budget" and done.stats.thinking_tokens == 5
    assert "budget reached" in done.stats.summary()


def test_steering_fields_go_to_our_server_by_our_names_and_kept_thinking_with_them():
    entry = {"id": "ours", "owned_by": "workbench", "workbench": {"steer": True}}
    server = fake_server([delta(reasoning_content="hm"), delta("stop", content="4")],
                         models=json.dumps({"data": [entry]}).encode())
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    messages = (Message("user", "2+2?"), Message("assistant", "4", thinking="two and two"), Message("user", "and 3+3?"))
    remote.generate(ChatRequest(messages, max_thinking_tokens=7, min_thinking_tokens=2, effort="high",
                                budget_message="Stop.", wait_text=" Hmm", continue_thinking="3 and 3",
                                answer_on_loop=True, keep_thinking=True)).collect()
    remote.generate(ChatRequest(messages)).collect()
    server.shutdown()
    steered, plain = server.requests
    assert {k: v for k, v in steered.items() if k not in plain} == {
        "max_thinking_tokens": 7, "min_thinking_tokens": 2, "reasoning_effort": "high", "budget_message": "Stop.",
        "wait_text": " Hmm", "continue_thinking": "3 and 3", "answer_on_loop": True, "keep_thinking": True}
    assert steered["messages"][1] == {"role": "assistant", "content": "4", "reasoning_content": "two and two"}
    assert plain["messages"][1] == {"role": "assistant", "content": "4"}  # dropped, as locally
    assert request_from_openai(steered).max_thinking_tokens == 7  # what we send, our server reads


@pytest.mark.parametrize("models", [None, json.dumps({"data": [{"id": "m", "owned_by": "workbench",
                                                                 "workbench": {"steer": False}}]}).encode()])
def test_a_server_that_does_not_steer_gets_no_steering_request(models):
    """A foreign server, or ours over an engine that cannot steer (the cluster): one line, nothing sent."""
    server = fake_server([delta("stop", content="4")], models=models)
    remote = RemoteEngine(f"http://127.0.0.1:{server.server_address[1]}")
    remote.load().collect()
    assert not remote.capabilities.steer
    *_, failed = remote.generate(ChatRequest((Message("user", "2+2?"),), max_thinking_tokens=5)).collect()
    server.shutdown()
    assert isinstance(failed, Failed) and "cannot steer the thinking" in failed.message and "\n" not in failed.message
    assert server.requests == []


@pytest.mark.parametrize("marker", [{"kind": "evil", "text": "x"}, {"kind": "budget"}, "budget", [1]])
def test_a_malformed_steering_mark_is_plain_thinking(marker):
    events = generate_from(fake_server([delta(reasoning_content="hm", workbench_steered=marker), delta("stop", content="4")]))
    assert not any(isinstance(e, Steered) for e in events)
    assert [e.text for e in events if isinstance(e, Think)] == ["hm"]


def test_a_steering_mark_from_a_server_is_made_safe():
    events = generate_from(fake_server([delta(reasoning_content="x", workbench_steered={"kind": "budget", "text": "x\ud800",
                                                                                      "tokens": -4}),
                                        delta("stop", content="4"), {"choices": [], "stats": {"thinking_cut": "evil"}}]))
    (steered,) = [e for e in events if isinstance(e, Steered)]
    assert (steered.text, steered.tokens) == ("x\ufffd", 0)
    assert events[-1].stats.thinking_cut == "" and events[-1].stats.thinking_closed


def test_workbench_run_with_a_thinking_budget_against_our_server(served, workbench_home):
    url, _ = served
    from conftest import workbench_env

    out = subprocess.run([sys.executable, "-m", "workbench", "run", QUESTION, "--endpoint", url, "--temp", "0", "--json",
                          "--no-save", "--thinking-budget", "5", "--min-thinking", "2", "--effort", "high"],
                         capture_output=True, text=True, timeout=120,
                         env=workbench_env(WORKBENCH_TOKEN="s3cret", WORKBENCH_HOME=str(workbench_home)))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["kind"] for e in events if e["type"] == "steered"] == ["budget"]
    assert events[-1]["stats"]["thinking_cut"] == "budget" and events[-1]["stats"]["thinking_tokens"] == 5


def test_workbench_run_and_eval_with_a_budget_against_a_foreign_server_refuse_in_one_line(workbench_home):
    from conftest import workbench_env

    server = fake_server([delta("stop", content="4")])
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for args in (["run", "2+2?", "--thinking-budget", "5"], ["run", "2+2?", "--effort", "low"],
                     ["eval", "--suite", "arithmetic", "--limit", "1", "--thinking-budget", "5"]):
            out = subprocess.run([sys.executable, "-m", "workbench", *args, "--endpoint", url], capture_output=True,
                                 text=True, timeout=120, env=workbench_env(WORKBENCH_HOME=str(workbench_home)))
            assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
            assert out.stderr.startswith(f"workbench: error: {url} cannot ")
    finally:
        server.shutdown()
    assert server.requests == []


def test_eval_with_a_thinking_budget_against_our_server(served, monkeypatch):
    import os

    from workbench.eval.runner import EvalOptions, run_eval

    url, _ = served
    monkeypatch.setenv("WORKBENCH_TOKEN", "s3cret")
    card, _ = run_eval(EvalOptions(suite="arithmetic", limit=2, endpoint=url, thinking_budget=0, temperature=0),
                       progress_stream=open(os.devnull, "w"))
    samples = [s for item in card["items"] for s in item["samples"]]
    assert card["sampling"]["thinking_budget"] == 0 and len(samples) == 2
    assert all(s["thinking_tokens"] == 0 for s in samples)

"""`workbench serve`: the OpenAI-compatible server on one machine, with the official openai client on
loopback. A chat's next turn reuses the cache of the one before across requests, and the usage says so
(`prompt_tokens_details.cached_tokens`, streaming and not); the token, the context and bad starts
(a port in use, no such model, beyond loopback without a token) each get one clear line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys

import pytest

from workbench.distributed.serve import open_server
from workbench.engine.events import ChatRequest, Message, Sampling
from workbench.engine.thread import ThreadEngine
from workbench.errors import UserError

QUESTION = "What is 12+30?"


@pytest.fixture(scope="module")
def served(taught_model):
    local = open_server(str(taught_model), token="s3cret").start()
    yield local
    local.close()


def client(local, token="s3cret"):
    import openai

    return openai.OpenAI(base_url=local.url, api_key=token, max_retries=0, timeout=60)


def ask_streaming(local, messages):
    """(thinking, answer, chunks) of one streamed answer with the usage chunk asked for."""
    thinking, answer, chunks = [], [], []
    for chunk in client(local).chat.completions.create(model=local.model_name, messages=messages, stream=True,
                                                       temperature=0, max_tokens=80,
                                                       stream_options={"include_usage": True}):
        chunks.append(chunk)
        if chunk.choices:
            thinking.append(getattr(chunk.choices[0].delta, "reasoning_content", None) or "")
            answer.append(chunk.choices[0].delta.content or "")
    return "".join(thinking), "".join(answer), chunks


def prompt_ids(engine, messages):
    from workbench.engine.generate import encode_prompt
    from workbench.engine.prompt import build_prompt

    return engine.call(lambda loaded: encode_prompt(loaded.tokenizer, build_prompt(
        loaded.tokenizer, messages, force_think=loaded.profile.force_think,
        system_prompt=loaded.profile.system_prompt))).result(timeout=60)


def test_the_next_turn_reuses_the_cache_and_the_usage_says_how_much(served):
    first = [{"role": "user", "content": QUESTION}]
    thinking, answer, chunks = ask_streaming(served, first)
    assert "12+30" in thinking and "\\boxed{42}" in answer
    last = chunks[-1]  # OpenAI's usage chunk: no choices, the usage
    assert last.choices == [] and last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    second = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "And 30+12?"}]
    _, _, chunks = ask_streaming(served, second)
    usage = chunks[-1].usage
    ids = [prompt_ids(served.engine, tuple(Message(m["role"], m["content"]) for m in turn)) for turn in (first, second)]
    shared = next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)
    assert shared > len(QUESTION)  # the whole first turn's prompt but the opened thinking
    assert usage.prompt_tokens == len(ids[1]) and usage.prompt_tokens_details.cached_tokens == shared
    # not streamed: the same usage in the answer; the same request again reuses all but its last token
    reply = client(served).chat.completions.create(model=served.model_name, messages=second, temperature=0,
                                                  max_tokens=80)
    assert reply.usage.prompt_tokens_details.cached_tokens == reply.usage.prompt_tokens - 1
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0


def test_the_answers_are_those_of_a_local_engine_without_reuse(served, taught_model):
    chat = [{"role": "user", "content": QUESTION}]
    reply = client(served).chat.completions.create(model=served.model_name, messages=chat, temperature=0, max_tokens=80)
    with ThreadEngine(prompt_cache_gb=0) as local:
        local.load(taught_model).collect()
        thinking, answer, _ = local.generate(ChatRequest.single(QUESTION, Sampling(temperature=0, max_tokens=80))).collect()
    assert (reply.choices[0].message.reasoning_content, reply.choices[0].message.content) == (thinking, answer)


def test_the_token_is_required_and_a_prompt_beyond_the_context_is_refused(served):
    import openai

    with pytest.raises(openai.AuthenticationError):
        client(served, token="wrong").models.list()
    assert client(served).models.list().data[0].model_extra["workbench"] == {"steer": True}  # a local engine steers
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client(served).chat.completions.create(model=served.model_name, max_tokens=10**6,
                                               messages=[{"role": "user", "content": "x"}])


def test_bad_starts_are_one_line(served, tmp_path):
    port = served.server.server_address[1]
    with pytest.raises(UserError, match=f"cannot serve on 127.0.0.1:{port} .*in use"):
        open_server(served.engine.info.path, port=port)
    with pytest.raises(UserError, match="cannot serve on 0.0.0.0:0 .*needs a token"):
        open_server(served.engine.info.path, host="0.0.0.0")
    with pytest.raises(UserError, match="no model named 'nope'"):
        open_server("nope")
    with pytest.raises(UserError, match="cannot serve on 127.0.0.1:70000"):  # bind() raises OverflowError
        open_server(served.engine.info.path, port=70000)
    out = subprocess.run([sys.executable, "-m", "workbench", "serve", "--port", "70000"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "70000 is not a port (0 to 65535)" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{")
    with pytest.raises(UserError, match="broken"):
        open_server(str(tmp_path / "broken"))


def test_the_command_serves_until_ctrl_c(taught_model):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--model", str(taught_model), "--port",
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving {taught_model.name} on http://127.0.0.1:{port}/v1"), (line, proc.stderr.read()
                                                                                               if proc.poll() else "")
        busy = subprocess.run([sys.executable, "-m", "workbench", "serve", "--model", str(taught_model), "--port",
                               str(port)], capture_output=True, text=True, timeout=120)
        assert busy.returncode == 2 and busy.stdout == ""
        assert busy.stderr.strip().splitlines() == [
            f"workbench: error: cannot serve on 127.0.0.1:{port} (Address already in use)"]
        import urllib.request

        body = json.dumps({"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 40}).encode()
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body),
                                    timeout=120) as r:
            assert json.loads(r.read())["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_remote_engine_reads_the_cached_tokens_into_its_stats(served):
    from workbench.engine.remote import RemoteEngine

    remote = RemoteEngine(served.url.removesuffix("/v1"), token="s3cret")
    remote.load().collect()
    request = ChatRequest.single("What is 30+12?", Sampling(temperature=0, max_tokens=40))
    *_, first = remote.generate(request).collect()
    *_, again = remote.generate(request).collect()
    assert first.stats.prompt_cached_tokens < first.stats.prompt_tokens - 1
    assert again.stats.prompt_cached_tokens == again.stats.prompt_tokens - 1 > 0


def test_a_thinking_budget_is_honoured(served):
    reply = client(served).chat.completions.create(model=served.model_name, temperature=0, max_tokens=80,
                                                  messages=[{"role": "user", "content": QUESTION}],
                                                  extra_body={"max_thinking_tokens": 3})
    assert reply.usage.completion_tokens_details.reasoning_tokens == 3


def test_serve_decodes_every_request_with_its_draft_and_says_so(taught_model):
    """`serve --draft`: every request drafts (the same greedy answer), the acceptance streams live and the stats
    name the draft; a draft that is not there is one line before anything is served."""
    from workbench.engine.events import Decoding, Drafted
    from workbench.engine.remote import RemoteEngine

    with pytest.raises(UserError, match="no-such-draft"):
        open_server(str(taught_model), decoding=Decoding(draft="no-such-draft"))
    local = open_server(str(taught_model), decoding=Decoding(draft=str(taught_model), draft_mode="on")).start()
    try:
        remote = RemoteEngine(local.url.removesuffix("/v1"))
        remote.load().collect()
        events = list(remote.generate(ChatRequest.single(QUESTION, Sampling(temperature=0, max_tokens=80))))
    finally:
        local.close()
    with ThreadEngine(prompt_cache_gb=0) as plain:
        plain.load(taught_model).collect()
        thinking, answer, _ = plain.generate(ChatRequest.single(QUESTION, Sampling(temperature=0, max_tokens=80))).collect()
    text = lambda kind: "".join(e.text for e in events if type(e).__name__ == kind)  # noqa: E731
    assert (text("Think"), text("Answer")) == (thinking, answer)
    stats = events[-1].stats
    assert stats.draft == taught_model.name and stats.draft_proposed >= stats.draft_accepted > 0
    assert any(isinstance(e, Drafted) for e in events)


def test_serve_context_refuses_with_400_what_does_not_fit_and_a_context_beyond_the_models_at_start(taught_model):
    import openai

    from workbench.engine.events import Decoding

    with pytest.raises(UserError, match="more than .* own context of 4,096 tokens"):
        open_server(str(taught_model), decoding=Decoding(context=5000))
    local = open_server(str(taught_model), decoding=Decoding(context=30)).start()
    try:
        with pytest.raises(openai.BadRequestError, match="maximum context length is 30 tokens") as refused:
            client(local, token="none").chat.completions.create(model=local.model_name,
                                                            messages=[{"role": "user", "content": "x " * 40}])
        assert refused.value.code == "context_length_exceeded"
        reply = client(local, token="none").chat.completions.create(model=local.model_name, temperature=0,
                                                                messages=[{"role": "user", "content": QUESTION}])
        assert reply.usage.prompt_tokens + reply.usage.completion_tokens == 30
        assert reply.choices[0].finish_reason == "length"
    finally:
        local.close()

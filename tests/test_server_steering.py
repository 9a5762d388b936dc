"""Steering the thinking through our OpenAI-compatible server (no MLX: scripted and slow engines):
every accepted name of the budget, effort and minimum fields, bad values and disagreeing names get 400
naming the field, a server whose engine cannot steer refuses them, the engine's cuts are marked in the
stream and in a plain answer, and a streaming response can be told to answer now."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from test_server import SlowEngine, post, wait_for

from workbench.distributed.server import ChatServer, request_from_openai
from workbench.engine.events import BUDGET_MESSAGE, EFFORTS
from workbench.engine.scripted import ScriptedEngine, script_from_text

ASK = [{"role": "user", "content": "What is 12+30?"}]


def body(**fields) -> dict:
    return {"messages": ASK, **fields}


@pytest.mark.parametrize("fields, expected", [
    ({"max_thinking_tokens": 32}, {"max_thinking_tokens": 32}),  # ours
    ({"thinking_budget_tokens": 32}, {"max_thinking_tokens": 32}),  # llama.cpp's server
    ({"thinking_token_budget": 32}, {"max_thinking_tokens": 32}),  # vLLM
    ({"thinking_budget_tokens": -1}, {"max_thinking_tokens": None}),  # llama.cpp's "no budget"
    ({"max_thinking_tokens": 0}, {"max_thinking_tokens": 0}),  # answer at once
    ({"max_thinking_tokens": 32, "thinking_token_budget": 32}, {"max_thinking_tokens": 32}),  # names agreeing
    ({"min_thinking_tokens": 16}, {"min_thinking_tokens": 16}),
    ({"thinking_budget_message": "Stop."}, {"budget_message": "Stop."}),  # llama.cpp's
    ({"budget_message": "Stop."}, {"budget_message": "Stop."}),
    ({"wait_text": " Hmm"}, {"wait_text": " Hmm"}),
    ({"continue_thinking": "12+30 is"}, {"continue_thinking": "12+30 is"}),
    ({"answer_on_loop": True, "keep_thinking": True}, {"answer_on_loop": True, "keep_thinking": True}),
    *[({"reasoning_effort": level}, {"effort": level}) for level in EFFORTS],
])
def test_each_accepted_name_sets_its_request_field(fields, expected):
    request = request_from_openai(body(**fields))
    assert {name: getattr(request, name) for name in expected} == expected


def test_a_request_without_steering_fields_does_not_steer():
    request = request_from_openai(body(temperature=0))
    assert not request.steers and request.budget_message == BUDGET_MESSAGE and not request.keep_thinking


BAD = [
    ({"max_thinking_tokens": "32"}, "'max_thinking_tokens' must be a whole number"),
    ({"max_thinking_tokens": 3.5}, "'max_thinking_tokens' must be a whole number"),
    ({"max_thinking_tokens": True}, "'max_thinking_tokens' must be a whole number"),
    ({"max_thinking_tokens": -1}, "'max_thinking_tokens' must be a whole number"),  # -1 means none only in llama.cpp's
    ({"thinking_budget_tokens": -2}, "'thinking_budget_tokens' must be a whole number"),
    ({"thinking_token_budget": 2**40}, "'thinking_token_budget' must be a whole number of tokens from 0 to 1048576"),
    ({"min_thinking_tokens": -5}, "'min_thinking_tokens' must be a whole number"),
    ({"max_thinking_tokens": 32, "thinking_budget_tokens": 64}, "'max_thinking_tokens' (32) and 'thinking_budget_tokens' (64) disagree"),
    ({"thinking_budget_tokens": -1, "thinking_token_budget": 64}, "'thinking_budget_tokens' (-1) and 'thinking_token_budget' (64) disagree"),
    ({"budget_message": "a", "thinking_budget_message": "b"}, "'budget_message' ('a') and 'thinking_budget_message' ('b') disagree"),
    ({"reasoning_effort": "extreme"}, "'reasoning_effort' must be one of off, low, medium, high, max"),
    ({"reasoning_effort": 3}, "'reasoning_effort' must be one of"),
    ({"thinking_budget_message": 5}, "'thinking_budget_message' must be a string"),
    ({"wait_text": "\ud800"}, "'wait_text' is not valid Unicode"),
    ({"answer_on_loop": "yes"}, "'answer_on_loop' must be true or false"),
]


@pytest.mark.parametrize("fields, expected", BAD)
def test_bad_values_are_named(fields, expected):
    with pytest.raises(ValueError) as raised:
        request_from_openai(body(**fields))
    assert expected in str(raised.value)


def serve(engine_submit, steers: bool) -> ChatServer:
    server = ChatServer(("127.0.0.1", 0), engine_submit, "served-model", steers=steers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def slow():
    engine = SlowEngine()
    server = serve(engine.submit, steers=True)
    server.engine = engine
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("fields, expected", BAD[:: 3] + BAD[7:8])
def test_bad_values_get_400_over_http_and_reach_no_engine(slow, fields, expected):
    status, reply = post(slow, json.dumps(body(**fields)).encode())
    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert expected in reply["error"]["message"]
    assert slow.engine.jobs == []


def test_a_server_whose_engine_cannot_steer_refuses_steering_and_says_so():
    engine = SlowEngine()
    server = serve(engine.submit, steers=False)  # as our cluster's rank 0
    try:
        status, reply = post(server, json.dumps(body(reasoning_effort="low", thinking_token_budget=8)).encode())
        assert status == 400
        assert reply["error"]["message"] == ("this server cannot steer the thinking: "
                                             "drop 'thinking_token_budget', 'reasoning_effort'")
        assert engine.jobs == []
        sock = post(server, json.dumps(body(thinking_budget_tokens=-1)).encode(), read=False)  # no budget: fine
        assert wait_for(lambda: engine.jobs)
        sock.close()
        assert models(server)["workbench"] == {"steer": False}
    finally:
        server.shutdown()
        server.server_close()


def models(server) -> dict:
    sock = socket.create_connection(server.server_address, timeout=30)
    sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"}]}" not in data and (chunk := sock.recv(65536)):
        data += chunk
    sock.close()
    (entry,) = json.loads(data.partition(b"\r\n\r\n")[2])["data"]
    return entry


def sse(server, fields: dict) -> list[dict]:
    """The `data:` payloads of a streamed answer (JSON decoded; "[DONE]" as is)."""
    raw = json.dumps(body(stream=True, **fields)).encode()
    sock = socket.create_connection(server.server_address, timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    events = [line[6:] for line in data.partition(b"\r\n\r\n")[2].decode().split("\n") if line.startswith("data: ")]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


@pytest.fixture
def scripted():
    engine = ScriptedEngine([script_from_text("12+30: ones first, then tens.", "The answer is 42.", chunk=4)])
    server = serve(engine.generate, steers=True)
    yield server
    server.shutdown()
    server.server_close()


def test_the_stream_marks_the_budget_cut_and_its_stats_say_so(scripted):
    assert models(scripted)["workbench"] == {"steer": True}
    events = sse(scripted, {"thinking_budget_tokens": 3})
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    marked = [i for i, d in enumerate(deltas) if "workbench_steered" in d]
    assert len(marked) == 1
    cut = deltas[marked[0]]
    assert cut["workbench_steered"] == {"kind": "budget", "text": BUDGET_MESSAGE, "tokens": 0}
    assert cut["reasoning_content"] == BUDGET_MESSAGE  # plain clients see it as thinking
    assert [d for d in deltas[1:marked[0]] if "reasoning_content" in d] == deltas[1:marked[0]]  # thinking before
    assert len(deltas[1:marked[0]]) == 3 and all("content" in d for d in deltas[marked[0] + 1:-1])  # the answer after
    final = events[-2]
    assert final["stats"]["thinking_cut"] == "budget" and final["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3
    assert events[-1] == "[DONE]"


def test_a_plain_answer_carries_the_same_marks(scripted):
    status, reply = post(scripted, json.dumps(body(max_thinking_tokens=3)).encode())
    message = reply["choices"][0]["message"]
    assert status == 200 and message["reasoning_content"] == "12+30: ones " + BUDGET_MESSAGE
    assert message["workbench_steered"] == [{"kind": "budget", "text": BUDGET_MESSAGE, "tokens": 0}]
    assert message["content"] == "The answer is 42." and reply["stats"]["thinking_cut"] == "budget"


def steer(server, response_id: str, payload: bytes) -> tuple[int, dict]:
    sock = socket.create_connection(server.server_address, timeout=30)
    sock.sendall(f"POST /v1/chat/completions/{response_id}/steer HTTP/1.1\r\nHost: x\r\n"
                 f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if b"\r\n\r\n" in data and data.rstrip().endswith(b"}"):
            break
    sock.close()
    head, _, reply = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(reply)


def test_a_streaming_response_can_be_told_to_answer_now(slow):
    raw = json.dumps(body(stream=True)).encode()
    sock = socket.create_connection(slow.server_address, timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    data = b""
    while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
        data += sock.recv(65536)
    first = json.loads(data.partition(b"\r\n\r\n")[2].split(b"\n\n")[0][6:])
    assert wait_for(lambda: slow.engine.jobs)
    job = slow.engine.jobs[0]
    assert steer(slow, first["id"], b'{"action": "sing"}')[0] == 400
    assert steer(slow, "chatcmpl-nobody", b'{"action": "answer_now"}')[0] == 404
    assert steer(slow, first["id"], b'{"action": "answer_now"}') == (200, {"id": first["id"], "action": "answer_now"})
    assert steer(slow, first["id"], b'{"action": "extend"}')[0] == 200
    assert [job.take_steer(), job.take_steer()] == ["answer_now", "extend"]
    sock.close()
    assert job.finished.wait(30)
    assert wait_for(lambda: not slow.live)  # a finished response is no longer steered
    assert steer(slow, first["id"], b'{"action": "answer_now"}')[0] == 404


def test_the_official_openai_client_sends_budgets_and_reads_the_marked_stream(scripted):
    import openai

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{scripted.server_address[1]}/v1", api_key="none",
                           max_retries=0, timeout=60)
    chunks = list(client.chat.completions.create(model="served-model", messages=ASK, stream=True,
                                                 reasoning_effort="high", extra_body={"thinking_budget_tokens": 3}))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    thinking = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert thinking == "12+30: ones " + BUDGET_MESSAGE  # plain clients read the budget message as thinking
    marks = [(d.model_extra or {}).get("workbench_steered") for d in deltas]
    assert [m["kind"] for m in marks if m] == ["budget"]
    assert "".join(d.content or "" for d in deltas) == "The answer is 42."
    reply = client.chat.completions.create(model="served-model", messages=ASK, reasoning_effort="low",
                                           extra_body={"thinking_token_budget": 3})
    assert reply.choices[0].message.model_extra["workbench_steered"][0]["kind"] == "budget"

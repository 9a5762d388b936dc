"""Exports (Markdown, JSONL, HTML), JSONL import round trips, and the `workbench sessions` command."""

import json

import pytest

from workbench.cli import build_parser
from workbench.commands import sessions as sessions_command
from workbench.engine.events import Answer, Done, Sampling, Stats, Think
from workbench.errors import UserError
from workbench.sessions import Store
from workbench.sessions.export import export_html, export_jsonl, export_markdown, import_jsonl
from workbench.sessions.recorder import Recorder

HOSTILE = "<script>alert(1)</script> \x1b]0;pwned\x07 & \"quotes\""


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        yield s


def record(store, prompt, thinking, answer, **stats):
    with Recorder.for_prompt(store, prompt, sampling=Sampling(temperature=0.6, seed=1)) as rec:
        rec.feed(Think(thinking))
        rec.feed(Answer(answer))
        rec.feed(Done(Stats(thinking_tokens=stats.get("t", 10), answer_tokens=stats.get("a", 3), finish_reason="stop")))
    return store.session("last")


def test_markdown_puts_thinking_in_details(store):
    s = record(store, "What is 12+30?", "Wait, 12+30 is 42.", "\\boxed{42}")
    md = export_markdown(s)
    assert md.startswith("# What is 12+30?")
    head, rest = md.split("<details>", 1)
    assert "What is 12+30?" in head
    details, after = rest.split("</details>", 1)
    assert "<summary>Thinking (10 tokens)</summary>" in details and "Wait, 12+30 is 42." in details
    assert "\\boxed{42}" in after and "markers: wait 1" in after and "answer matches thinking" in after


def test_jsonl_uses_chat_messages_with_reasoning_content(store):
    s = record(store, "q?", "thinking here", "answer here")
    line = json.loads(export_jsonl(s))
    assert line["messages"][0] == {"role": "user", "content": "q?"}
    reply = line["messages"][1]
    assert (reply["role"], reply["content"], reply["reasoning_content"]) == ("assistant", "answer here", "thinking here")
    assert reply["workbench"]["status"] == "complete" and reply["workbench"]["seed"] == 1


def test_export_import_round_trip(store, tmp_path):
    sessions = [record(store, "What is 12+30?", "Hmm. Wait, 42.\n\nLet me check.", "\\boxed{42}"),
                record(store, "Say hi " + HOSTILE, "等等 " + HOSTILE, HOSTILE)]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(export_jsonl(s) for s in sessions), encoding="utf-8")
    ids = import_jsonl(store, path)
    assert len(ids) == 2
    for original, new_id in zip(sessions, ids):
        copy = store.session(new_id)
        assert copy["title"] == original["title"] and copy["kind"] == "import"
        keys = ("role", "content", "thinking", "status", "model", "sampling", "seed", "stats", "inspection")
        assert [{k: t[k] for k in keys} for t in copy["turns"]] == [{k: t[k] for k in keys} for t in original["turns"]]
        assert export_jsonl(copy) == export_jsonl(original).replace('"kind": "run"', '"kind": "import"')


def test_import_of_bare_message_lines(store, tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"role": "user", "content": "hi"}\n\n'
                    '{"role": "assistant", "content": "hello", "reasoning_content": "greet back"}\n')
    (sid,) = import_jsonl(store, path)
    turns = store.session(sid)["turns"]
    assert [(t["role"], t["content"], t["thinking"], t["status"]) for t in turns] == [
        ("user", "hi", "", None), ("assistant", "hello", "greet back", "complete")]


@pytest.mark.parametrize("content,error", [
    ('{"messages": [{"role": "user", "content": "ok"}]}\n{not json\n', r":2: not valid JSON"),
    ('{"messages": [{"role": "wizard", "content": "x"}]}\n', r":1: message 1: a message needs a \"role\""),
    ('{"messages": [{"role": "user", "content": 5}]}\n', r"\"content\" must be a string"),
    ('[1, 2, 3]\n', r":1: expected"),
    ("\n\n", r"no sessions"),
])
def test_malformed_jsonl_is_a_clear_error_and_imports_nothing(store, tmp_path, content, error):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=error):
        import_jsonl(store, path)
    assert store.list_sessions() == []


def test_imported_metadata_of_the_wrong_shape_is_dropped_and_surrogates_replaced(store, tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "user", "content": "a\ud800b"},
        {"role": "assistant", "content": "x", "workbench": {"stats": "not a dict", "seed": "7", "model": "m",
                                                             "status": "streaming"}}]}))
    (sid,) = import_jsonl(store, path)
    user, reply = store.session(sid)["turns"]
    assert user["content"] == "a?b"
    assert reply["stats"] is None and reply["seed"] is None and reply["model"] == "m" and reply["status"] == "complete"


def test_html_escapes_model_output_and_marks_reflection(store):
    s = record(store, HOSTILE, "Wait, " + HOSTILE, HOSTILE)
    page = export_html(s)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert '<mark title="wait">Wait</mark>' in page
    assert page.count("<details>") == 1


def cli(*argv):
    args = build_parser().parse_args(["sessions", *argv])
    return sessions_command.main(args)


def test_sessions_command(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(store.path))
    first = record(store, "What is 12+30?", "Wait, 42.", "\\boxed{42}")
    second = record(store, "Say " + HOSTILE, "ok", HOSTILE)
    assert cli("list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [second["id"], first["id"]] and rows[0]["status"] == "complete"
    assert cli("show", "last", "--json") == 0
    assert json.loads(capsys.readouterr().out)["id"] == second["id"]
    assert cli("show", str(second["id"])) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b" in out and "Thinking" in out  # control characters shown, not obeyed
    assert cli("search", "wait", "--json") == 0
    assert [h["session"] for h in json.loads(capsys.readouterr().out)] == [first["id"]]
    for fmt in ("md", "jsonl", "html"):
        target = tmp_path / f"s.{fmt}"
        assert cli("export", str(first["id"]), "--format", fmt, "-o", str(target)) == 0
        assert "What is 12+30?" in target.read_text()
    assert cli("import", str(tmp_path / "s.jsonl")) == 0
    assert "imported 1 session" in capsys.readouterr().out
    assert cli("list") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    with pytest.raises(UserError):
        cli("show", "12345")


def interrupted_response(store, thinking: str) -> None:
    sid = store.new_session("q")
    store.add_turn(sid, "user", "q")
    turn = store.start_response(sid)
    store.append_response(turn, thinking, "")
    store.db.execute("UPDATE turns SET status = 'interrupted', pid = NULL WHERE id = ?", (turn,))
    store.db.commit()


def test_an_interrupted_response_is_shown_with_an_inspection_computed_from_its_text(store, capsys, monkeypatch):
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(store.path))
    interrupted_response(store, "Wait, half a thought")
    assert cli("show", "last", "--json") == 0
    reply = json.loads(capsys.readouterr().out)["turns"][1]
    assert reply["status"] == "interrupted" and reply["thinking"] == "Wait, half a thought"
    assert reply["inspection"]["markers"]["counts"]["wait"] == 1


def test_show_stores_the_inspection_it_computes_for_an_interrupted_response(store, capsys, monkeypatch):
    """It was computed again on every `show` (and inspection of a long thinking is not free)."""
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(store.path))
    interrupted_response(store, "Wait, half a thought")
    calls = []
    import workbench.inspect as inspect

    real = inspect.inspect_text
    monkeypatch.setattr(inspect, "inspect_text", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        assert cli("show", "last", "--json") == 0
        reply = json.loads(capsys.readouterr().out)["turns"][1]
        assert reply["inspection"]["markers"]["counts"]["wait"] == 1
    assert calls == [1]  # computed once, then read from the store

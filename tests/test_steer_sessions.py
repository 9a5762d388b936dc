"""Steering from the surfaces: `workbench run`'s steering flags and headless edit-and-continue
(`--continue SESSION:TURN --thinking-file F`), forks in the store, and forks through export/import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.engine.events import Answer, Done, Sampling, Stats, Steered, Think
from workbench.errors import UserError
from workbench.sessions import Store
from workbench.sessions.branches import branch, only_branch, parents
from workbench.sessions.continuation import continuation, parse_ref
from workbench.sessions.export import export_jsonl, export_markdown, import_jsonl
from workbench.sessions.recorder import Recorder

WORKBENCH = [sys.executable, "-m", "workbench"]


def run(*args, env=None):
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        yield s


def respond(store, session_id, thinking, answer, parent_id=None, prefix="", steered=()):
    with Recorder(store, session_id, "q", sampling=Sampling(temperature=0.0), parent_id=parent_id,
                  thinking_prefix=prefix) as rec:
        rec.feed(Think(thinking))
        for s in steered:
            rec.feed(s)
        rec.feed(Answer(answer))
        rec.feed(Done(Stats(thinking_tokens=3, answer_tokens=1, finish_reason="stop",
                            thinking_cut="budget" if steered else "")))
    return rec.turn_id


def forked(store):
    """q -> a1; q -> a2 (a fork: continued from an edit of a1's thinking); a2 -> q2 -> a3."""
    sid = store.new_session("q")
    q = store.add_turn(sid, "user", "What is 12+30?")
    a1 = respond(store, sid, "12+30 is 42.", "42")
    a2 = respond(store, sid, " is 40+2.", "42", parent_id=q, prefix="12+30", steered=[Steered("budget", " Enough.", 3)])
    q2 = store.add_turn(sid, "user", "And 1+1?")
    a3 = respond(store, sid, "2.", "2")
    return sid, q, a1, a2, q2, a3


def test_a_fork_is_a_branch_of_its_session(store):
    sid, q, a1, a2, q2, a3 = forked(store)
    turns = store.session(sid)["turns"]
    assert parents(turns) == {q: None, a1: q, a2: q, q2: a2, a3: q2}
    assert [t["id"] for t in branch(turns, a3)] == [q, a2, q2, a3]
    assert [t["id"] for t in branch(turns, a1)] == [q, a1]
    by_id = {t["id"]: t for t in turns}
    assert by_id[a2]["thinking"] == "12+30 is 40+2. Enough."  # the prefix, the new thinking, the engine's words
    assert by_id[a2]["stats"]["steered"] == [{"kind": "budget", "at": len("12+30 is 40+2."), "text": " Enough."}]
    with pytest.raises(UserError, match="no turn 999"):
        branch(turns, 999)


def test_forks_round_trip_through_export_and_import(store, tmp_path):
    sid, q, a1, a2, q2, a3 = forked(store)
    session = store.session(sid)
    (tmp_path / "s.jsonl").write_text(export_jsonl(session))
    messages = json.loads((tmp_path / "s.jsonl").read_text())["messages"]
    assert [m.get("workbench", {}).get("parent") for m in messages] == [None, None, 0, None, None]
    [new] = import_jsonl(store, tmp_path / "s.jsonl")
    again = store.session(new)["turns"]
    shape = lambda turns: [(t["role"], t["content"], t["thinking"]) for t in turns]  # noqa: E731
    assert shape(again) == shape(session["turns"])
    old_index = {t["id"]: i for i, t in enumerate(session["turns"])}
    new_index = {t["id"]: i for i, t in enumerate(again)}
    assert ({new_index[k]: None if v is None else new_index[v] for k, v in parents(again).items()}
            == {old_index[k]: None if v is None else old_index[v] for k, v in parents(session["turns"]).items()})
    assert export_jsonl(store.session(new)).replace('"import"', '"chat"') == export_jsonl(session)


@pytest.mark.parametrize("parent", [3, -1, "0", True])
def test_an_import_whose_parent_is_not_an_earlier_message_imports_nothing(store, tmp_path, parent):
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                         {"role": "assistant", "content": "b", "workbench": {"parent": parent}}]}
    (tmp_path / "bad.jsonl").write_text(json.dumps(line) + "\n")
    before = len(store.list_sessions())
    with pytest.raises(UserError, match=r"bad.jsonl:1: message 3: \"parent\" must be the index of an earlier"):
        import_jsonl(store, tmp_path / "bad.jsonl")
    assert len(store.list_sessions()) == before


def test_a_branch_alone_and_forks_marked_in_markdown(store):
    sid, q, a1, a2, q2, a3 = forked(store)
    session = store.session(sid)
    assert f"branch from turn {q}" in export_markdown(session)
    only = export_markdown(only_branch(session, a1))
    assert "12+30 is 42." in only and "And 1+1?" not in only and "branch from" not in only


def test_continuation_answers_the_prompt_again_from_the_edited_thinking(store, tmp_path):
    sid, q, a1, a2, q2, a3 = forked(store)
    c = continuation(f"{sid}:{a3}", store=store)
    assert c.parent_id == q2 and c.thinking == "2."
    assert [(m.role, m.content) for m in c.messages] == [("user", "What is 12+30?"), ("assistant", "42"),
                                                         ("user", "And 1+1?")]
    assert c.messages[1].thinking == "12+30 is 40+2. Enough."
    (tmp_path / "t.txt").write_text("edited")
    assert continuation(f"{sid}:{a1}", str(tmp_path / "t.txt"), store=store).thinking == "edited"
    with pytest.raises(UserError, match="is a user turn, not a response"):
        continuation(f"{sid}:{q}", store=store)
    with pytest.raises(UserError, match="nope.txt: cannot read the thinking"):
        continuation(f"{sid}:{a1}", str(tmp_path / "nope.txt"), store=store)
    for bad in ("12", "x:y", ":3"):
        with pytest.raises(UserError, match="--continue wants SESSION:TURN"):
            parse_ref(bad)


def test_run_with_a_budget_marks_the_cut_in_json_and_saves_it(taught_model):
    out = run("run", "--json", "What is 12+30?", "--model", str(taught_model), "--thinking-budget", "6")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    steered = [e for e in events if e["type"] == "steered"]
    assert [e["kind"] for e in steered] == ["budget"] and "limited time" in steered[0]["text"]
    done = events[-1]["stats"]
    assert done["thinking_tokens"] == 6 and done["thinking_cut"] == "budget"
    shown = run("sessions", "show", "last")
    assert "budget reached" in shown.stdout and "Considering the limited time" in shown.stdout


def test_run_continue_from_an_edited_thinking_makes_a_branch(taught_model, tmp_path):
    first = run("run", "--json", "What is 12+30?", "--model", str(taught_model))
    assert first.returncode == 0, first.stderr
    session = json.loads(run("sessions", "show", "last", "--json").stdout)
    response = session["turns"][-1]["id"]
    (tmp_path / "thinking.txt").write_text("12+30: ones first, then")
    out = run("run", "--continue", f"{session['id']}:{response}", "--thinking-file", str(tmp_path / "thinking.txt"),
              "--model", str(taught_model))
    assert out.returncode == 0, out.stderr
    assert "12+30: ones first, then tens. 12+30=42." in out.stdout and "\\boxed{42}" in out.stdout
    turns = json.loads(run("sessions", "show", str(session["id"]), "--json").stdout)["turns"]
    assert len(turns) == 3 and turns[2]["parent_id"] == turns[0]["id"]
    assert turns[2]["thinking"] == "12+30: ones first, then tens. 12+30=42." and turns[2]["content"] == turns[1]["content"]
    tree = run("sessions", "show", str(session["id"])).stdout
    assert f"branch from turn {turns[0]['id']}" in tree


@pytest.mark.parametrize("args, error", [
    (["--continue", "1:2", "hi"], "give no PROMPT with it"),
    (["hi", "--thinking-file", "x"], "--thinking-file goes with --continue"),
    (["hi", "--thinking-budget", "-1"], "--thinking-budget must be 0 or more"),
    (["--continue", "7:1"], "no session 7"),
])
def test_run_steering_mistakes_are_one_line(args, error, taught_model):
    out = run("run", *args, "--model", str(taught_model))
    assert out.returncode == 2 and error in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr

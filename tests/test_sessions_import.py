"""`sessions import` of hostile files: every field checked, all or nothing; and readers (show, the
exports, the app's panels) that cope with whatever an older workbench stored."""

import json
import sqlite3

import pytest

from workbench.cli import main
from workbench.errors import UserError
from workbench.sessions import Store
from workbench.sessions.export import EXPORTERS, import_jsonl
from workbench.commands.sessions import print_session, with_inspection

GOOD = {"title": "good", "messages": [{"role": "user", "content": "q"},
                                      {"role": "assistant", "content": "a", "reasoning_content": "t"}]}


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        yield s


def write(tmp_path, *lines) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return str(path)


@pytest.mark.parametrize("created", ["1e300", "Infinity", "-Infinity", "-1e18", "NaN", "1e400", '"yesterday"', "true"])
def test_a_bad_created_time_is_refused_naming_the_line_and_nothing_is_imported(store, tmp_path, created):
    bad = json.dumps(GOOD)[:-1] + f', "created": {created}}}'
    path = write(tmp_path, GOOD, GOOD, bad)
    with pytest.raises(UserError, match=r"in\.jsonl:3: "):
        import_jsonl(store, path)
    assert store.list_sessions() == []


def test_nan_anywhere_is_refused(store, tmp_path):
    meta = '{"role": "assistant", "content": "a", "workbench": {"stats": {"total_time": NaN}}}'
    path = write(tmp_path, GOOD, '{"messages": [' + meta + "]}")
    with pytest.raises(UserError, match=r"in\.jsonl:2: not valid JSON \(NaN"):
        import_jsonl(store, path)
    assert store.list_sessions() == []


def test_import_is_one_transaction(store, tmp_path, monkeypatch):
    path = write(tmp_path, GOOD, GOOD, GOOD)
    real, calls = store.add_turn, []

    def full_on_the_fifth(*a, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*a, **kw)

    monkeypatch.setattr(store, "add_turn", full_on_the_fifth)
    with pytest.raises(UserError, match="nothing imported from .*in.jsonl: .*disk is full"):
        import_jsonl(store, path)
    monkeypatch.undo()
    assert store.list_sessions() == []
    assert import_jsonl(store, path) and len(store.list_sessions()) == 3


def test_good_times_and_seeds_are_kept(store, tmp_path):
    line = dict(GOOD, created=1700000000.5)
    line["messages"] = [GOOD["messages"][0], dict(GOOD["messages"][1], workbench={"seed": 7})]
    [sid] = import_jsonl(store, write(tmp_path, line))
    session = store.session(sid)
    assert session["created"] == 1700000000.5 and session["turns"][1]["seed"] == 7


WRONG_SHAPES = [
    {"inspection": {"markers": "x"}},
    {"inspection": {"tokens": {"thinking_share": "x"}}},
    {"inspection": {"language": {"flagged": True}}},
    {"inspection": {"markers": {"counts": [1, 2], "total": 2, "positions": []}}},
    {"inspection": {"markers": {"counts": {"wait": 1}, "total": 1, "positions": [[0, "x", "wait"], "y", [0, 4]]}}},
    {"inspection": {"steps": [{"start": 0}], "loops": {"loop": "yes"}, "consistency": {"consistent": "x"}}},
    {"inspection": {"tokens": {"thinking": 1, "answer": 1, "thinking_o200k": 5, "answer_o200k": "x",
                               "thinking_share": 0.5}}},
    {"inspection": {"tokens": {"cost": {"hosted_usd": []}}}},
    {"stats": {"generation_tps": "fast", "thinking_tokens": "many"}},
    {"stats": {"generation_tps": 10**400, "thinking_time": 1e308, "thinking_tokens": 10**30}},
    {"stats": [1, 2]},
    {"inspection": [], "sampling": {"temperature": {"deep": 1}}, "seed": 10**30},
]


@pytest.mark.parametrize("meta", WRONG_SHAPES)
def test_wrong_shaped_metadata_is_dropped_and_show_and_exports_work(store, tmp_path, capsys, meta):
    line = {"messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "content": "the answer", "reasoning_content": "Wait, the thinking",
                          "workbench": meta}]}
    [sid] = import_jsonl(store, write(tmp_path, line))
    session = store.session(sid)
    assert session["turns"][1]["content"] == "the answer"
    shown_everywhere(session, capsys)


def test_whatever_an_older_store_holds_is_read_in_its_known_shape(store, capsys):
    """Cells written before import checked anything: every wrong shape above, straight into the columns."""
    for meta in [*WRONG_SHAPES, {"inspection": "not json {", "stats": "[[[["}]:
        sid = store.new_session("old", "import")
        store.add_turn(sid, "user", "q")
        turn = store.add_turn(sid, "assistant", "the answer", "Wait, the thinking", status="complete")
        for column, value in meta.items():
            cell = value if isinstance(value, str) else json.dumps(value)
            store.db.execute(f"UPDATE turns SET {column} = ? WHERE id = ?", (cell, turn))
        store.db.commit()
        shown_everywhere(store.session(sid), capsys)


def shown_everywhere(session, capsys):
    print_session(with_inspection(session))
    for export in EXPORTERS.values():
        assert "the answer" in export(session)
    out = capsys.readouterr().out
    assert "the answer" in out and "Wait, the thinking" in out


def test_sessions_command_with_hostile_imports_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(tmp_path / "s.db"))
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")
    path = write(tmp_path, *[{"messages": [{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "a", "workbench": m}]}
                             for m in WRONG_SHAPES])
    assert main(["sessions", "import", path]) == 0
    assert main(["sessions", "list"]) == 0
    for n in range(1, len(WRONG_SHAPES) + 1):
        for argv in (["show", str(n)], ["show", str(n), "--json"], ["export", str(n), "--format", "html"],
                     ["export", str(n), "--format", "md"], ["export", str(n), "--format", "jsonl"]):
            assert main(["sessions", *argv]) == 0, argv
    bad = write(tmp_path, '{"messages": [{"role": "user", "content": "q"}], "created": 1e300}')
    assert main(["sessions", "import", bad]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:1:" in err and "created" in err and "Traceback" not in err


def test_what_workbench_itself_stores_is_read_back_unchanged(store):
    """The shapes (sessions/shapes.py) cover every key the recorder writes: nothing of ours is dropped."""
    from workbench.engine.events import Answer, Done, Sampling, Stats, Think
    from workbench.sessions.recorder import Recorder

    thinking = "Hmm, 12+30. Wait, let me check.\n\nBut 12+30=42. 等等 alternatively recompute.\n\nSo \\boxed{42}"
    with Recorder.for_prompt(store, "What is 12+30?", sampling=Sampling(temperature=0.6, seed=3)) as rec:
        rec.feed(Think(thinking))
        rec.feed(Answer("\\boxed{42}"))
        rec.feed(Done(Stats(thinking_tokens=30, answer_tokens=5, thinking_time=1.5, answer_time=0.2,
                            finish_reason="stop", thinking_closed=True)))
    turn = store.session("last")["turns"][1]
    raw = dict(zip(("sampling", "stats", "inspection"), store.db.execute(
        "SELECT sampling, stats, inspection FROM turns WHERE id = ?", (turn["id"],)).fetchone()))
    for column, cell in raw.items():
        assert turn[column] == json.loads(cell), column
    assert turn["inspection"]["markers"]["total"] >= 4 and turn["stats"]["generation_tps"] > 0

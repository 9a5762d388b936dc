"""The session store: writing, reading, search, migrations, corrupt files, interrupted responses."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from workbench.engine.events import Answer, Done, Failed, Sampling, Stats, Think
from workbench.errors import UserError
from workbench.sessions import Store
from workbench.engine.job import Job
from workbench.sessions.recorder import Recorder
from workbench.sessions.store import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db") as s:
        yield s


def test_default_location_is_in_the_user_data_directory(workbench_home, monkeypatch):
    with Store.open() as s:
        assert s.path == workbench_home / "sessions.db" and s.path.exists()
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(workbench_home / "elsewhere.db"))
    with Store.open() as s:
        assert s.path.name == "elsewhere.db"


def test_sessions_turns_list_show_and_search(store):
    a = store.new_session("first")
    store.add_turn(a, "user", "What is 12+30?")
    store.add_turn(a, "assistant", "It is 42.", "12+30: tens then ones, WAIT, 42.", status="complete",
                   model="m", sampling={"temperature": 0.6}, seed=3, stats={"answer_tokens": 4})
    b = store.new_session("second 100%_done")
    store.add_turn(b, "user", "hello")
    listed = store.list_sessions()
    assert [r["id"] for r in listed] == [b, a]
    assert listed[1]["status"] == "complete" and listed[1]["model"] == "m" and listed[1]["turns"] == 2
    shown = store.session(a)
    assert [t["role"] for t in shown["turns"]] == ["user", "assistant"]
    reply = shown["turns"][1]
    assert reply["sampling"] == {"temperature": 0.6} and reply["seed"] == 3 and reply["stats"]["answer_tokens"] == 4
    assert store.session("last")["id"] == b
    hits = store.search("wait")  # case-insensitive, found in thinking
    assert [(h["session"], h["in"]) for h in hits] == [(a, "thinking")] and "WAIT" in hits[0]["snippet"]
    assert [h["session"] for h in store.search("100%_")] == [b]  # LIKE wildcards are literal
    assert store.search("%") == [] or all("%" in h["title"] for h in store.search("%"))
    with pytest.raises(UserError, match="no session 999"):
        store.session(999)
    with pytest.raises(UserError, match="not a session id"):
        store.session("abc")


def test_show_last_on_an_empty_store_is_a_clear_error(store):
    with pytest.raises(UserError, match="no sessions yet"):
        store.session("last")


def test_garbage_file_is_moved_aside_with_a_message(tmp_path):
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    messages = []
    with Store.open(path, notice=messages.append) as s:
        assert s.moved_aside is not None and s.moved_aside.read_bytes() == b"this is not sqlite at all" * 100
        assert len(messages) == 1 and str(s.moved_aside) in messages[0] and "nothing deleted" in messages[0]
        s.new_session("fresh")
    with Store.open(path, notice=messages.append) as s:  # the fresh one is fine
        assert [r["title"] for r in s.list_sessions()] == ["fresh"] and len(messages) == 1


def test_damaged_pages_are_detected_and_moved_aside(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path) as s:
        for i in range(300):
            sid = s.new_session(f"session {i}")
            s.add_turn(sid, "user", "x" * 500)
        s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 20 * 4096
    for page in range(3, 20):  # scribble over b-tree pages, keep the header valid
        data[page * 4096: page * 4096 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    messages = []
    with Store.open(path, notice=messages.append) as s:
        assert s.moved_aside and s.moved_aside.read_bytes() == bytes(data)
        assert s.list_sessions() == [] and messages


def test_locked_or_unreadable_is_an_error_not_a_recovery(tmp_path):
    path = tmp_path / "s.db"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(UserError, match="cannot open"):
        Store.open(path, notice=pytest.fail)
    assert path.is_dir()


def test_migrations_upgrade_an_old_store_and_keep_its_data(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO sessions (title, kind, created, updated) VALUES ('old', 'chat', 1, 1)")
    db.commit()
    db.close()
    with Store.open(path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert "host" in [r[1] for r in s.db.execute("PRAGMA table_info(turns)")]
        assert [r["title"] for r in s.list_sessions()] == ["old"]


def test_a_store_from_a_newer_workbench_is_left_alone(tmp_path):
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(UserError, match="newer workbench"):
        Store.open(path, notice=pytest.fail)
    assert path.read_bytes() == before


def test_streaming_response_of_a_dead_process_becomes_interrupted(tmp_path):
    path = tmp_path / "s.db"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store.open(path) as s:
        sid = s.new_session("q")
        mine = s.start_response(sid, model="m")
        s.append_response(mine, "thinking so far", "")
        theirs = s.start_response(sid, model="m")
        s.append_response(theirs, "half a thought", "an ans")
        s.db.execute("UPDATE turns SET pid = ? WHERE id = ?", (dead.pid, theirs))
        s.db.commit()
    with Store.open(path) as s:
        turns = {t["id"]: t for t in s.session(sid)["turns"]}
        assert turns[theirs]["status"] == "interrupted"
        assert (turns[theirs]["thinking"], turns[theirs]["content"]) == ("half a thought", "an ans")
        assert turns[mine]["status"] == "streaming"  # this process is alive: still being written


def test_recorder_stores_text_stats_and_inspection(store):
    with Recorder.for_prompt(store, "What is 12+30?", sampling=Sampling(temperature=0.0, seed=7)) as rec:
        for e in [Think("Hmm, 12+30. "), Think("Wait, let me check: 42."), Answer("The answer is "),
                  Answer("\\boxed{42}."), Done(Stats(thinking_tokens=9, answer_tokens=5, finish_reason="stop"))]:
            rec.feed(e)
    s = store.session("last")
    user, reply = s["turns"]
    assert s["kind"] == "run" and user["content"] == "What is 12+30?"
    assert reply["thinking"] == "Hmm, 12+30. Wait, let me check: 42." and reply["content"] == "The answer is \\boxed{42}."
    assert reply["status"] == "complete" and reply["seed"] == 7 and reply["sampling"]["temperature"] == 0.0
    assert reply["stats"]["thinking_tokens"] == 9
    ins = reply["inspection"]
    assert ins["markers"]["counts"]["hmm"] == 1 and ins["markers"]["counts"]["wait"] == 1
    assert ins["tokens"]["thinking"] == 9 and ins["consistency"]["consistent"] is True


def test_recording_leaves_o200k_counts_to_whoever_shows_them(store, monkeypatch):
    # Loading o200k_base takes ~1 s: a response's end (and `workbench run`'s exit) must not wait for it.
    from workbench.commands.sessions import with_inspection
    from workbench.inspect import tokens

    monkeypatch.setattr(tokens, "_o200k", [])  # not loaded in this process
    events = [Think("Hmm, 12+30. Wait, 42."), Answer("The answer is \\boxed{42}."),
              Done(Stats(thinking_tokens=9, answer_tokens=5, thinking_time=1.0, answer_time=1.0, finish_reason="stop"))]
    with Recorder.for_prompt(store, "What is 12+30?") as rec:
        for e in events:
            rec.feed(e)
    assert tokens._o200k == [], "recording loaded the o200k table"
    recorded = store.session("last")["turns"][1]["inspection"]["tokens"]
    assert recorded["thinking_o200k"] is None and recorded["thinking"] == 9 and recorded["thinking_share"] == 0.6429
    price = tokens.DEFAULT_PRICES["o3"]
    assert recorded["cost"]["hosted_usd"]["o3"] == pytest.approx(14 * price / 1e6)  # by the model's tokens until then

    shown = with_inspection(store.session("last"), store)["turns"][1]["inspection"]["tokens"]
    ot, oa = tokens.count_o200k("Hmm, 12+30. Wait, 42."), tokens.count_o200k("The answer is \\boxed{42}.")
    assert (shown["thinking_o200k"], shown["answer_o200k"]) == (ot, oa) and shown["thinking"] == 9
    assert shown["cost"]["hosted_usd"]["o3"] == pytest.approx((ot + oa) * price / 1e6)
    assert shown["cost"]["local_wh"] == recorded["cost"]["local_wh"]
    assert store.session("last")["turns"][1]["inspection"]["tokens"] == shown  # kept: counted once

    with Recorder.for_prompt(store, "again") as rec:  # once the table is loaded, recording counts at once
        for e in events:
            rec.feed(e)
    assert store.session("last")["turns"][1]["inspection"]["tokens"]["thinking_o200k"] == ot


def test_finishing_a_response_syncs_that_commit_only(store):
    sid = store.new_session("s")
    turn = store.start_response(sid)
    store.finish_response(turn, "complete", {"answer_tokens": 1})
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again for the streaming writes
    with store.transaction():  # inside another transaction the outer commit decides (the level cannot change)
        store.finish_response(store.start_response(sid), "stopped")
    assert [t["status"] for t in store.session(sid)["turns"]] == ["complete", "stopped"]


@pytest.mark.parametrize("last,status", [
    (Done(Stats(finish_reason="cancelled")), "stopped"),
    (Done(Stats(finish_reason="length")), "complete"),
    (Failed("boom"), "stopped"),
])
def test_recorder_statuses(store, last, status):
    with Recorder.for_prompt(store, "q") as rec:
        rec.feed(Think("a"))
        rec.feed(last)
    assert store.session("last")["turns"][1]["status"] == status


def test_recorder_says_once_when_everything_is_in_the_store(store):
    seen = []
    rec = Recorder.for_prompt(store, "q", on_saved=lambda: seen.append(store.session("last")["turns"][1]["status"]))
    rec.feed(Think("a"))
    assert seen == []
    rec.feed(Done(Stats(finish_reason="stop")))
    rec.feed(Done(Stats(finish_reason="stop")))  # a second end changes nothing
    assert seen == ["complete"] and rec.saved


def test_recorder_left_by_an_exception_marks_interrupted_and_keeps_text(store):
    with pytest.raises(KeyboardInterrupt):
        with Recorder.for_prompt(store, "q") as rec:
            rec.feed(Think("partial thought"))
            raise KeyboardInterrupt
    reply = store.session("last")["turns"][1]
    assert reply["status"] == "interrupted" and reply["thinking"] == "partial thought"


def test_recorder_writes_while_streaming(store, tmp_path):
    rec = Recorder.for_prompt(store, "q", flush_every=0.05)
    rec.feed(Think("written before the end"))
    other = sqlite3.connect(store.path)  # another reader, as after a crash
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = other.execute("SELECT thinking, status FROM turns WHERE id = ?", (rec.turn_id,)).fetchone()
        if row[0]:
            break
        time.sleep(0.02)
    assert row == ("written before the end", "streaming")
    rec.feed(Done(Stats(finish_reason="stop")))
    other.close()


def test_a_job_asked_to_stop_on_loops_cancels_itself_and_the_loop_is_recorded(store):
    job = Job(stop_on_loop=True)
    line = "So we add the numbers again and get the same sum as before, then check it. "
    with Recorder.for_prompt(store, "q") as rec:
        for _ in range(30):
            job.put(Think(line))
            if job.stop_reason():
                break
        job.put(Done(Stats(finish_reason=job.stop_reason() or "stop")))
        rec.follow(job).collect()
    assert job.stop_reason() == "loop"
    reply = store.session("last")["turns"][1]
    assert reply["status"] == "stopped" and reply["inspection"]["loops"]["loop"] is True


def test_no_loop_no_cancel_and_no_check_unless_asked():
    ordinary, looping = Job(stop_on_loop=True), Job()
    ordinary.put(Think("A perfectly ordinary line of reasoning that goes somewhere new each time. "))
    for _ in range(30):
        looping.put(Think("So we add the numbers again and get the same sum as before, then check it. "))
    assert ordinary.stop_reason() is None and looping.stop_reason() is None


def test_a_failed_write_keeps_the_text_for_the_next_one(store, monkeypatch):
    rec = Recorder.for_prompt(store, "q", flush_every=3600)  # flushes only when asked
    rec.feed(Think("first "))
    real = store.append_response
    monkeypatch.setattr(store, "append_response", lambda *a: (_ for _ in ()).throw(sqlite3.OperationalError("locked")))
    with pytest.raises(sqlite3.OperationalError):
        rec.flush()
    monkeypatch.setattr(store, "append_response", real)
    rec.feed(Think("second"))
    rec.feed(Done(Stats(finish_reason="stop")))
    assert store.session("last")["turns"][1]["thinking"] == "first second"

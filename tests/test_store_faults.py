"""The session store under faults: unusable, read-only, locked, full. `workbench run` still prints the
answer, says in one line that it was not saved, exits 1, and loses nothing already stored.

A read-only volume and a full disk are real: a tmpfs mounted in a user namespace (`unshare -rm`),
since root ignores file permissions. Without user namespaces those tests are skipped.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest

from workbench.sessions import Store

WORKBENCH = [sys.executable, "-m", "workbench"]
PROMPT = "What is 12+30?"


def _unshared(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """`argv` in a new user and mount namespace. unshare(2) refuses a multithreaded caller, and a preloaded
    OpenBLAS starts threads in `unshare` itself: it is preloaded again inside, for Python only."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if os.environ.get("LD_PRELOAD"):
        env["WORKBENCH_TEST_PRELOAD"] = os.environ["LD_PRELOAD"]
    return subprocess.run(["unshare", "-rm", *argv], env=env, capture_output=True, text=True, **kw)


def _unshare_works() -> bool:
    return bool(shutil.which("unshare")) and _unshared(["true"], timeout=30).returncode == 0


needs_mounts = pytest.mark.skipif(not _unshare_works(), reason="needs unprivileged user namespaces (unshare -rm)")


def run_json(model, *extra, env=None):
    return subprocess.run([*WORKBENCH, "run", "--json", PROMPT, "--model", str(model), *extra],
                          capture_output=True, text=True, timeout=180, env=env)


def assert_answered_not_saved(out):
    """The whole answer on stdout, one warning line on stderr, exit 1, no traceback or abort."""
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and events[-1]["type"] == "done", out.stdout + out.stderr
    assert "42" in "".join(e["text"] for e in events if e["type"] == "answer")
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "not saved" in lines[0], out.stderr
    assert "Traceback" not in out.stderr and "terminate" not in out.stderr
    assert out.returncode == 1, out.stderr


def seed_store(path):
    with Store.open(path) as store:
        session = store.new_session("kept", "run")
        store.add_turn(session, "user", "kept prompt")


def test_run_with_a_directory_for_a_store_prints_the_answer_and_says_not_saved(taught_model, workbench_home):
    (workbench_home / "sessions.db").mkdir(parents=True)
    out = run_json(taught_model)
    assert_answered_not_saved(out)
    assert "sessions.db" in out.stderr and "directory" in out.stderr


def test_compare_with_a_directory_for_a_store_still_compares_and_says_not_saved(taught_model, workbench_home):
    (workbench_home / "sessions.db").mkdir(parents=True)
    out = subprocess.run([*WORKBENCH, "compare", "--json", PROMPT, "--model", str(taught_model), "--samples", "2"],
                         capture_output=True, text=True, timeout=180)
    report = json.loads(out.stdout)
    assert report["session"] is None and len(report["results"]) == 2
    assert all("42" in r["answer"] for r in report["results"]), report
    warnings = [line for line in out.stderr.splitlines() if line.startswith("workbench: warning")]
    assert len(warnings) == 1 and "not saved" in warnings[0] and "directory" in warnings[0], out.stderr
    assert "Traceback" not in out.stderr and out.returncode == 1


@pytest.mark.slow
def test_run_with_a_locked_store_waits_then_prints_the_answer_unsaved(taught_model, workbench_home):
    path = workbench_home / "sessions.db"
    seed_store(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = run_json(taught_model)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_answered_not_saved(out)
    assert "locked" in out.stderr
    with Store.open(path) as store:
        assert [s["title"] for s in store.list_sessions()] == ["kept"]
        assert [t["content"] for t in store.session("last")["turns"]] == ["kept prompt"]


@pytest.mark.slow
def test_run_with_a_store_locked_briefly_saves_once_it_is_free(taught_model, workbench_home):
    path = workbench_home / "sessions.db"
    seed_store(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(2.0, lambda: holder.execute("ROLLBACK"))  # well inside the 10 s busy timeout
    release.start()
    out = run_json(taught_model)
    release.join()
    holder.close()
    assert out.returncode == 0 and out.stderr == "", out.stderr
    with Store.open(path) as store:
        assert [s["title"] for s in store.list_sessions()] == [PROMPT, "kept"]
        assert store.session("last")["turns"][1]["status"] == "complete"


def in_tmpfs(tmp_path, size_kib: int, script: str):
    """Run `script` (sh) with $MNT a fresh tmpfs of `size_kib` KiB, in a user and mount namespace."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    full = (f'set -u\nMNT={mnt}\nmount -t tmpfs -o size={size_kib}k tmpfs "$MNT" || exit 99\n'
            f'export LD_PRELOAD="${{WORKBENCH_TEST_PRELOAD:-}}"\n{script}')
    out = _unshared(["sh", "-c", full], timeout=300)
    assert out.returncode != 99, out.stderr
    return out


PY = sys.executable


@needs_mounts
def test_read_only_volume_lists_and_shows_and_run_still_answers(taught_model, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    out = in_tmpfs(tmp_path, 1024, f"""
export WORKBENCH_HOME="$MNT"
{PY} -c 'from workbench.sessions import Store; s = Store.open(); s.add_turn(s.new_session("kept", "run"), "user", "kept prompt"); s.close()'
mount -o remount,ro "$MNT"
{PY} -m workbench sessions list --json > {logs}/list.out 2> {logs}/list.err; echo $? > {logs}/list.rc
{PY} -m workbench sessions show 1 > {logs}/show.out 2> {logs}/show.err; echo $? > {logs}/show.rc
{PY} -m workbench run --json "{PROMPT}" --model {taught_model} > {logs}/run.out 2> {logs}/run.err; echo $? > {logs}/run.rc
""")
    assert out.returncode == 0, out.stderr

    def result(name):
        return subprocess.CompletedProcess([], int((logs / f"{name}.rc").read_text()),
                                           (logs / f"{name}.out").read_text(), (logs / f"{name}.err").read_text())

    listed = result("list")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert [s["title"] for s in json.loads(listed.stdout)] == ["kept"]
    shown = result("show")
    assert shown.returncode == 0 and "kept prompt" in shown.stdout, shown.stderr
    ran = result("run")
    assert_answered_not_saved(ran)


@needs_mounts
@pytest.mark.slow
@pytest.mark.parametrize("free_kib", [0, 40, 56])
def test_full_disk_at_the_start_of_a_run(taught_model, tmp_path, free_kib):
    """Three fill levels: full at open, full when the session is created, full after it was created."""
    logs = tmp_path / "logs"
    logs.mkdir()
    out = in_tmpfs(tmp_path, 512, f"""
export WORKBENCH_HOME="$MNT"
{PY} -c 'from workbench.sessions import Store; s = Store.open(); s.add_turn(s.new_session("kept", "run"), "user", "kept prompt"); s.close()'
dd if=/dev/zero of="$MNT/filler" bs=4k 2>/dev/null; rm "$MNT/filler"
avail=$(df -k "$MNT" | tail -1 | awk '{{print $4}}')
dd if=/dev/zero of="$MNT/filler" bs=1k count=$((avail - {free_kib})) 2>/dev/null
{PY} -m workbench run --json "{PROMPT}" --model {taught_model} > {logs}/run.out 2> {logs}/run.err; echo $? > {logs}/run.rc
rm "$MNT/filler"
{PY} -c 'import json; from workbench.sessions import Store; s = Store.open(); print(json.dumps([s.session(r["id"]) for r in s.list_sessions()]))' > {logs}/after.json
""")
    assert out.returncode == 0, out.stderr
    ran = subprocess.CompletedProcess([], int((logs / "run.rc").read_text()), (logs / "run.out").read_text(),
                                      (logs / "run.err").read_text())
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert events and events[-1]["type"] == "done" and "42" in "".join(e["text"] for e in events if e["type"] == "answer")
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1 and "disk is full" in ran.stderr, ran.stderr
    sessions = json.loads((logs / "after.json").read_text())
    assert sessions[-1]["title"] == "kept" and [t["content"] for t in sessions[-1]["turns"]] == ["kept prompt"]
    for s in sessions[:-1]:  # a run that got its session in has its response too, never the prompt alone
        assert [t["role"] for t in s["turns"]] == ["user", "assistant"], s
        assert s["turns"][1]["status"] in ("interrupted", "complete")


def test_a_failed_commit_leaves_no_session_holding_only_the_prompt(tmp_path, monkeypatch):
    from workbench.sessions.recorder import Recorder

    with Store.open(tmp_path / "s.db") as store:
        connection = store.db

        class FullOnCommit:  # SQLite writes the WAL at commit: that is where a full disk shows
            def __getattr__(self, name):
                return getattr(connection, name)

            def commit(self):
                raise sqlite3.OperationalError("database or disk is full")

        writers_before = {t for t in threading.enumerate() if t.name == "session-writer"}
        store.db = FullOnCommit()
        with pytest.raises(sqlite3.OperationalError):
            Recorder.for_prompt(store, "a prompt")
        store.db = connection
        assert store.list_sessions() == []
        assert store.db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 0
        new_writers = {t for t in threading.enumerate() if t.name == "session-writer"} - writers_before
        for t in new_writers:
            t.join(5)
        assert not any(t.is_alive() for t in new_writers)  # the failed recorder's writer ended


def test_sessions_list_survives_times_no_date_can_show(tmp_path, monkeypatch, capsys):
    """A store written by an older workbench that imported `"created": 1e300`."""
    from workbench.cli import main

    path = tmp_path / "s.db"
    with Store.open(path) as store:
        for when in (1e300, -1e18, float("inf")):
            store.db.execute("INSERT INTO sessions (title, kind, created, updated) VALUES ('old', 'import', ?, ?)",
                             (when, when))
        store.db.commit()
    monkeypatch.setenv("WORKBENCH_SESSIONS_DB", str(path))
    monkeypatch.setenv("WORKBENCH_NO_OPENBLAS", "1")
    assert main(["sessions", "list"]) == 0
    assert capsys.readouterr().out.count("old") == 3
    assert main(["sessions", "show", "1"]) == 0

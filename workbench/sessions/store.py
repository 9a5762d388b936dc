"""The session store: one SQLite file (WAL) holding every session, turn and response.

- Responses are written while they stream (see recorder.py); a response whose writer died is
  marked "interrupted" the next time the store opens, and keeps the text it had.
- The schema is versioned with `PRAGMA user_version`; MIGRATIONS run in order, each in a transaction.
- A corrupt file is moved aside (never deleted) with a message, and a fresh store is created.
- Commits survive a killed process (WAL, synchronous=NORMAL); a finished response's last commit is also
  synced to disk (one fsync of the WAL), so closing need not checkpoint (see `leave_to_exit`).
Safe to share between threads (one connection behind a lock) and processes (SQLite's locking).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path

from workbench.errors import UserError
from workbench.sessions.shapes import clean

DB_ENV = "WORKBENCH_SESSIONS_DB"
STATUSES = ("streaming", "complete", "stopped", "interrupted")

MIGRATIONS = [
    # 1: sessions and their turns; an assistant turn is a response with its model, settings and numbers.
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        kind TEXT NOT NULL DEFAULT 'chat',  -- chat | run | compare | import
        created REAL NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        role TEXT NOT NULL,                 -- system | user | assistant
        content TEXT NOT NULL DEFAULT '',   -- for a response: the answer
        thinking TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT,                        -- responses: streaming | complete | stopped | interrupted
        label TEXT,                         -- compare: which variant this response is
        model TEXT, model_hash TEXT, adapter TEXT, adapter_hash TEXT,
        sampling TEXT,                      -- JSON
        seed INTEGER,
        stats TEXT,                         -- JSON
        inspection TEXT,                    -- JSON
        pid INTEGER                         -- the process writing a streaming response
    );
    CREATE INDEX turns_by_session ON turns(session_id, id);
    """,
    # 2: the writer's host, so a pid is only checked on the machine it belongs to.
    """
    ALTER TABLE turns ADD COLUMN host TEXT;
    CREATE INDEX sessions_by_update ON sessions(updated);
    """,
    # 3: branches: the turn a turn follows when it is not the one before it (a fork); NULL: the one before.
    """
    ALTER TABLE turns ADD COLUMN parent_id INTEGER;
    """,
]
CORRUPT_SIGNS = ("not a database", "malformed", "integrity check", "corrupt")
JSON_COLUMNS = ("sampling", "stats", "inspection")
STALE_FOREIGN_WRITER = 600.0  # s: a streaming response from another host with no write for this long is dead
LATEST_TIME = 253402300799.0  # 9999-12-31: a `created` beyond it cannot be shown as a date
_LEFT_TO_EXIT: list[sqlite3.Connection] = []  # see Store.leave_to_exit


def default_path() -> Path:
    if os.environ.get(DB_ENV):
        return Path(os.environ[DB_ENV]).expanduser()
    from workbench.paths import workbench_home

    return workbench_home() / "sessions.db"


def _notice(message: str) -> None:
    print(f"workbench: {message}", file=sys.stderr)


def problem(path: Path, error: BaseException, doing: str = "open") -> str:
    """One line naming the store, what went wrong and what to do."""
    if path.is_dir():
        return f"{path}: cannot {doing} the session store: it is a directory; move it away, or set {DB_ENV} to a file"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    if "locked" in text or "busy" in text:
        advice = "another program holds it locked; try again when it has finished"
    elif "full" in text or _nearly_full(path.parent):
        advice = "the disk is full; free some space"
    else:
        advice = f"make it writable, or set {DB_ENV} to a file you can write"
    return f"{path}: cannot {doing} the session store ({text}); {advice}"


class Store:
    def __init__(self, connection: sqlite3.Connection, path: Path, moved_aside: Path | None = None,
                 read_only: bool = False) -> None:
        self.db = connection
        self.path = path
        self.moved_aside = moved_aside  # where a corrupt file went, if this open recovered from one
        self.read_only = read_only
        self.lock = threading.RLock()
        self._depth = 0  # nesting of `transaction()`

    # ---- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path | str | None = None, notice=_notice, write: bool = True) -> "Store":
        """The store at `path` (default: `default_path()`). With `write=False` (list, show, export) a store
        that cannot be written, e.g. on a read-only volume, is opened read-only instead of refused."""
        path = Path(path) if path else default_path()
        moved = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = _connect(path)
        except OSError as e:
            if not write and path.is_file():
                return cls(_connect_read_only(path), path, read_only=True)
            raise UserError(problem(path, e)) from None
        except sqlite3.DatabaseError as e:
            if not any(sign in str(e) for sign in CORRUPT_SIGNS):  # e.g. locked, or a read-only disk
                if not write and path.is_file():
                    return cls(_connect_read_only(path), path, read_only=True)
                raise UserError(problem(path, e)) from None
            moved = _move_aside(path)
            notice(f"{path} is not a readable session store ({e}); moved it aside to {moved} "
                   f"(nothing deleted) and started a new one")
            db = _connect(path)
        store = cls(db, path, moved)
        try:
            store.mark_interrupted()
        except sqlite3.Error as e:
            db.close()
            raise UserError(problem(path, e)) from None
        return store

    @contextlib.contextmanager
    def transaction(self):
        """The writes inside are one transaction (all kept or none); nests, the outermost commits."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.db.execute("BEGIN IMMEDIATE")  # the write lock now, not at the first write
            self._depth = 1
            try:
                yield
                self.db.commit()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.db.rollback()
                raise
            finally:
                self._depth = 0

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def leave_to_exit(self) -> None:
        """Instead of `close()`, in a process that ends right after (`workbench run`): closing the last
        connection copies the WAL into the file and deletes it, two fsyncs and two unlinks after the answer
        (up to hundreds of ms on a busy disk). Left open, the WAL keeps every commit, as after a killed
        process, and the next opener reads it. Kept referenced until the exit: collected, it would close."""
        with self.lock:
            _LEFT_TO_EXIT.append(self.db)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing -----------------------------------------------------------------------------
    def new_session(self, title: str, kind: str = "chat", created: float | None = None) -> int:
        now = created or time.time()
        with self.transaction():
            return self.db.execute("INSERT INTO sessions (title, kind, created, updated) VALUES (?, ?, ?, ?)",
                                   (title[:200], kind, now, now)).lastrowid

    def add_turn(self, session_id: int, role: str, content: str, thinking: str = "", **response) -> int:
        """A finished turn (a prompt, or a whole response with `status`, `stats`, ... given)."""
        now = response.pop("created", None) or time.time()
        columns = {"session_id": session_id, "role": role, "content": content, "thinking": thinking,
                   "created": now, "updated": now}
        for key, value in response.items():
            columns[key] = json.dumps(value) if key in JSON_COLUMNS and value is not None else value
        names = ", ".join(columns)
        with self.transaction():
            turn = self.db.execute(f"INSERT INTO turns ({names}) VALUES ({', '.join('?' * len(columns))})",
                                   tuple(columns.values())).lastrowid
            self.db.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        return turn

    def start_response(self, session_id: int, **response) -> int:
        """An empty response, status "streaming", owned by this process until `finish_response`."""
        return self.add_turn(session_id, "assistant", "", "", status="streaming", pid=os.getpid(),
                             host=socket.gethostname(), **response)

    def append_response(self, turn_id: int, thinking: str, answer: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE turns SET thinking = thinking || ?, content = content || ?, updated = ? "
                            "WHERE id = ?", (thinking, answer, time.time(), turn_id))

    def finish_response(self, turn_id: int, status: str, stats: dict | None = None,
                        inspection: dict | None = None) -> None:
        """The response's last write, synced to disk when it commits (an fsync of the WAL, not a checkpoint)."""
        assert status in STATUSES, status
        with self.lock:
            durable = self._depth == 0  # the level can only change outside a transaction (else: the outer commit)
            if durable:
                self.db.execute("PRAGMA synchronous=FULL")
            try:
                with self.transaction():
                    self.db.execute("UPDATE turns SET status = ?, stats = ?, inspection = ?, pid = NULL, updated = ? "
                                    "WHERE id = ?", (status, _json(stats), _json(inspection), time.time(), turn_id))
            finally:
                if durable:
                    self.db.execute("PRAGMA synchronous=NORMAL")

    def set_inspection(self, turn_id: int, inspection: dict) -> None:
        with self.transaction():
            self.db.execute("UPDATE turns SET inspection = ? WHERE id = ?", (_json(inspection), turn_id))

    def mark_interrupted(self) -> list[int]:
        """Responses still "streaming" whose writer is gone become "interrupted"; returns their ids."""
        here, now = socket.gethostname(), time.time()
        with self.lock:
            rows = self.db.execute("SELECT id, pid, host, updated FROM turns WHERE status = 'streaming'").fetchall()
            dead = [r[0] for r in rows if (not _alive(r[1]) if r[2] == here else now - r[3] > STALE_FOREIGN_WRITER)]
            if dead:
                with self.transaction():
                    self.db.executemany("UPDATE turns SET status = 'interrupted', pid = NULL WHERE id = ?",
                                        [(i,) for i in dead])
        return dead

    # ---- reading -----------------------------------------------------------------------------
    def list_sessions(self, limit: int = 50) -> list[dict]:
        with self.lock:
            rows = self.db.execute(
                """SELECT s.id, s.title, s.kind, s.created, s.updated,
                          (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id),
                          (SELECT t.status FROM turns t WHERE t.session_id = s.id AND t.role = 'assistant'
                           ORDER BY t.id DESC LIMIT 1),
                          (SELECT t.model FROM turns t WHERE t.session_id = s.id AND t.role = 'assistant'
                           ORDER BY t.id DESC LIMIT 1)
                   FROM sessions s ORDER BY s.updated DESC, s.id DESC LIMIT ?""", (limit,)).fetchall()
        keys = ("id", "title", "kind", "created", "updated", "turns", "status", "model")
        return [dict(zip(keys, r)) for r in rows]

    def session(self, ref: int | str) -> dict:
        """A session with its turns; `ref` is an id or "last" (the most recently updated)."""
        with self.lock:
            if str(ref) == "last":
                row = self.db.execute("SELECT id FROM sessions ORDER BY updated DESC, id DESC LIMIT 1").fetchone()
                if row is None:
                    raise UserError(f"{self.path}: no sessions yet")
                ref = row[0]
            try:
                session_id = int(ref)
            except ValueError:
                raise UserError(f"not a session id: {ref!r} (a number, or 'last')") from None
            head = self.db.execute("SELECT id, title, kind, created, updated FROM sessions WHERE id = ?",
                                   (session_id,)).fetchone()
            if head is None:
                raise UserError(f"no session {session_id} in {self.path}")
            cur = self.db.execute("SELECT * FROM turns WHERE session_id = ? ORDER BY id", (session_id,))
            names = [d[0] for d in cur.description]
            turns = [_turn(dict(zip(names, r))) for r in cur.fetchall()]
        return dict(zip(("id", "title", "kind", "created", "updated"), head), turns=turns)

    def search(self, text: str, limit: int = 50) -> list[dict]:
        """Turns whose answer, thinking or session title contain `text` (case-insensitive for ASCII)."""
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.lock:
            rows = self.db.execute(
                """SELECT t.session_id, s.title, t.id, t.role, t.content, t.thinking FROM turns t
                   JOIN sessions s ON s.id = t.session_id
                   WHERE t.content LIKE ?1 ESCAPE '\\' OR t.thinking LIKE ?1 ESCAPE '\\' OR s.title LIKE ?1 ESCAPE '\\'
                   ORDER BY t.id DESC LIMIT ?2""", (like, limit)).fetchall()
        hits = []
        for session_id, title, turn_id, role, content, thinking in rows:
            where, snippet = "title", title
            for name, body in (("thinking", thinking), ("answer" if role == "assistant" else role, content)):
                i = body.lower().find(text.lower())
                if i >= 0:
                    where, snippet = name, body[max(0, i - 40): i + len(text) + 40]
                    break
            hits.append({"session": session_id, "title": title, "turn": turn_id, "in": where,
                         "snippet": " ".join(snippet.split())})
        return hits


# ---- helpers -----------------------------------------------------------------------------------

def _connect(path: Path) -> sqlite3.Connection:
    """Open, check and migrate; raises sqlite3.DatabaseError for a corrupt file."""
    if path.exists() and path.stat().st_size and _head(path) != b"SQLite format 3\x00":
        raise sqlite3.DatabaseError("file is not a database")
    db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):  # checked before anything is written to the file
            raise UserError(f"{path}: made by a newer workbench (schema {version}, this one knows "
                            f"{len(MIGRATIONS)}); upgrade workbench or set {DB_ENV} to another file")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable against a killed process
        db.execute("PRAGMA foreign_keys=ON")
        _migrate(db, version)
    except BaseException:
        db.close()
        raise
    db.isolation_level = ""  # back to transactions managed by `with db:` (sqlite3's default)
    return db


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A store that cannot be written (a read-only volume): read as it is, no migration, no marking."""
    uri = path.resolve().as_uri()
    try:
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
            db.execute("SELECT 1 FROM sqlite_master")
        except sqlite3.OperationalError:
            # WAL needs its -shm file, which a read-only directory cannot get; nobody can change the
            # file there either, so reading it as immutable is safe.
            db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as e:
        raise UserError(problem(path, e)) from None
    if version != len(MIGRATIONS):
        db.close()
        raise UserError(f"{path}: read-only, and its schema ({version}) is not this workbench's "
                        f"({len(MIGRATIONS)}); open it once where it can be written")
    return db


def _migrate(db: sqlite3.Connection, version: int) -> None:
    for number in range(version + 1, len(MIGRATIONS) + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] >= number:  # another process got here first
                db.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _nearly_full(folder: Path) -> bool:
    """SQLite reports a full disk as "disk I/O error" when it cannot even make its -shm file."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(16)


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{path.name}.corrupt-{stamp}-{n}"), n + 1
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    return target


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


def _turn(row: dict) -> dict:
    for key in JSON_COLUMNS:
        if row.get(key):
            try:
                row[key] = clean(key, json.loads(row[key]))  # stored by any version: readers get the known shape
            except (ValueError, RecursionError):
                row[key] = None  # a damaged JSON cell: show the text, drop the numbers
    return row


def valid_time(value) -> bool:
    """A time (s since 1970) that can be shown as a date."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= LATEST_TIME

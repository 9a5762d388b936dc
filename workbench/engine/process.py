"""The engine in its own process, for the app: the app's drawing and MLX no longer share one GIL.

`ProcessEngine` implements `workbench.engine.protocol.Engine` and runs an ordinary `ThreadEngine` in
a child process (`python -m workbench.engine.process FD`, OpenBLAS preloaded on
Linux). Both sides speak pickled tuples over a socket pair:
    parent -> child: (kind, job_id, payload), kind in "load", "generate", "cancel", "steer", "close"
    child -> parent: a list of (job_id, event), what the engine put in the last few milliseconds,
                     then (None, the child's peak resident memory in GB): the model lives there
The engine thread only queues its events; a sender thread pickles and sends them in batches, so a
fast stream costs one send per batch, not per token, and generation never waits on the socket.
A reader thread in the parent hands each event to its Job. If the child dies (killed, crash, out of
memory), every open Job gets `Failed` at once; the next `load` starts a new child.
`engine.call(fn)` is left out: nothing outside the engine tests uses it, and fn would have to pickle.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from workbench.engine.events import TERMINAL, ChatRequest, Failed, Loaded, ModelInfo
from workbench.engine.job import Job
from workbench.engine.memory import peak_rss_gb
from workbench.engine.protocol import Capabilities


class ChildJob(Job):
    """A Job whose events come from the child; cancel and steering requests are messages to it."""

    def __init__(self, engine: "ProcessEngine", job_id: int) -> None:
        super().__init__()
        self.engine, self.id = engine, job_id

    def cancel(self, reason: str = "cancelled") -> None:
        super().cancel(reason)
        if not self.finished.is_set():
            self.engine._send(("cancel", self.id, reason))

    def steer(self, kind: str) -> None:
        if not self.finished.is_set():
            self.engine._send(("steer", self.id, kind))


class ProcessEngine:
    capabilities = Capabilities(steer=True, decode=True)  # no `call`: its function would have to pickle

    def __init__(self) -> None:
        from workbench.engine.thread import prompt_cache_setting

        prompt_cache_setting()  # a bad setting is one line here, not a child that cannot start
        self.info: ModelInfo | None = None
        self._memory_gb: float | None = None  # the child's peak resident memory, as of its last message
        self._lock = threading.Lock()  # guards _jobs, _dead and sending
        self._jobs: dict[int, ChildJob] = {}
        self._next_id = 0
        self._closing = False
        # Children are started from this one thread, made now: a process inherits its parent
        # thread's nice value, and the app lowers its own threads' (see tui/app.py) once running.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="engine-spawner")
        self._start()

    # ---- the child ---------------------------------------------------------------------------
    def _start(self) -> None:
        self._spawner.submit(self._spawn).result()

    def _spawn(self) -> None:
        from workbench.blas import preload_env

        ours, theirs = socket.socketpair()
        self._log = tempfile.TemporaryFile()  # the child's stdout/stderr: never onto the app's screen
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "workbench.engine.process", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            env=preload_env(os.environ) or dict(os.environ),
            # Its own process group, so the terminal's Ctrl+C goes to the app, which decides; but the
            # app's session, not a new one: Linux puts each session in its own scheduling autogroup,
            # and two autogroups share the CPU equally, whatever the app's threads' nice 19 says.
            process_group=0)
        theirs.close()
        self._conn = Connection(ours.detach())
        self._dead: str | None = None  # why the child is gone, once it is
        self._memory_gb = None  # a new child: nothing heard from it yet (not the dead one's figure)
        threading.Thread(target=self._read, args=(self._conn, self._proc, self._log),
                         name="engine-process-reader", daemon=True).start()

    def _read(self, conn: Connection, proc: subprocess.Popen, log) -> None:
        while True:
            try:
                batch = conn.recv()
            except (EOFError, OSError):
                break
            for job_id, event in batch:
                if job_id is None:
                    self._memory_gb = event
                    continue
                if isinstance(event, Loaded):
                    self.info = event.info  # before the job ends, as the in-process engine does
                with self._lock:
                    job = self._jobs.pop(job_id, None) if isinstance(event, TERMINAL) else self._jobs.get(job_id)
                if job is not None:
                    job.put(event)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # it closed the socket but lives on: end it
            proc.kill()
            code = proc.wait()
        conn.close()
        reason = "the engine was closed" if self._closing else f"the engine process died ({exit_status(code)})"
        if code > 0 and not self._closing and (last := last_line(log)):
            reason += f": {last}"  # e.g. a Python error that escaped the engine
        with self._lock:
            self._dead = reason
            orphans, self._jobs = list(self._jobs.values()), {}
        for job in orphans:
            job.put(Failed(reason))

    def _send(self, message: tuple) -> bool:
        with self._lock:
            if self._dead:
                return False
            try:
                self._conn.send(message)
                return True
            except OSError:  # the child just died; the reader fails its jobs
                return False

    def _submit(self, kind: str, payload) -> ChildJob:
        with self._lock:
            self._next_id += 1
            job = ChildJob(self, self._next_id)
            if self._dead:
                job.put(Failed(self._dead if self._closing else f"{self._dead}; load a model to start it again"))
                return job
            self._jobs[job.id] = job
            try:
                self._conn.send((kind, job.id, payload))
            except OSError:
                pass  # the child is dying: its reader fails this job with the others
        return job

    # ---- engine interface --------------------------------------------------------------------
    def memory_gb(self) -> float | None:
        """The child's peak resident memory (GB) as of its last message: the model lives there."""
        return self._memory_gb

    def load(self, model=None, adapter=None, trust_remote_code: bool = False) -> Job:
        with self._lock:
            if self._dead is not None and not self._closing:  # it died: a new child for the new model
                self.info = None
                self._start()
        return self._submit("load", (model, adapter, trust_remote_code))

    def generate(self, request: ChatRequest) -> Job:
        return self._submit("generate", request)

    def close(self, timeout: float = 5.0) -> None:
        self._closing = True
        self._send(("close", None, None))
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._spawner.shutdown(wait=False)

    def __enter__(self) -> "ProcessEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def last_line(log, limit: int = 200) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 4096))
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"exit code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


# ---- the child process ---------------------------------------------------------------------------
BATCH_WINDOW = 0.05  # seconds the sender collects events before one send: each send wakes threads in
# both processes, and the app merges a frame's events (1/10 s or more) into one screen update anyway


class Outbox:
    """The child's events on their way to the parent. An event does not wake the sender (on a 2-core
    machine each wake-up is CPU taken from generation); a job's end, or None (stop), does."""

    def __init__(self) -> None:
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.flush = threading.Event()

    def put(self, item) -> None:  # (job_id, event), or None
        self.items.put(item)
        if item is None or isinstance(item[1], TERMINAL):
            self.flush.set()


class ForwardedJob(Job):
    """The child's side of a job: its events go to the sender thread's outbox."""

    def __init__(self, outbox: Outbox, job_id: int, request=None) -> None:
        super().__init__(request is not None and request.stop_on_loop, request is not None and request.answer_on_loop)
        self.outbox, self.id = outbox, job_id

    def put(self, event) -> None:
        self.watch(event)
        self.outbox.put((self.id, event))
        if isinstance(event, TERMINAL):
            self.finished.set()


def send_batches(conn: Connection, outbox: Outbox) -> None:
    """Send the outbox in batches: wait for one event, then sleep out BATCH_WINDOW (cut short when a
    job ends), send everything queued in one message. None in the outbox: send what is left and stop."""
    done = False
    while not done:
        batch = [outbox.items.get()]
        outbox.flush.wait(BATCH_WINDOW)
        outbox.flush.clear()  # a flush set after this is seen next time round, at worst one early send
        while True:
            try:
                batch.append(outbox.items.get_nowait())
            except queue.Empty:
                break
        if None in batch:
            done = True
            batch = batch[:batch.index(None)]
        try:
            if batch:
                conn.send(batch + [(None, peak_rss_gb())])
        except OSError:  # the parent is gone; the main thread sees EOF and exits
            pass
        except Exception as e:  # noqa: BLE001 - an event that would not pickle: fail its jobs, not the sender
            failed = [(job_id, Failed(f"the engine could not send a result: {e}")) for job_id in dict.fromkeys(j for j, _ in batch)]
            try:
                conn.send(failed)
            except OSError:
                pass


def serve(conn: Connection) -> None:
    """Run a ThreadEngine on this process's jobs until "close" or until the parent goes away."""
    from workbench.engine.thread import ThreadEngine

    engine = ThreadEngine()
    outbox = Outbox()
    sender = threading.Thread(target=send_batches, args=(conn, outbox), name="engine-sender", daemon=True)
    sender.start()
    jobs: dict[int, ForwardedJob] = {}

    while True:
        try:
            kind, job_id, payload = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the parent died: nobody is left to read the results
        if kind == "close":
            for job in jobs.values():
                job.cancel()
            engine.close()
            outbox.put(None)
            sender.join(timeout=5)  # the last events (the cancelled jobs' Failed) reach the parent
            return
        if kind in ("cancel", "steer"):
            job = jobs.get(job_id)
            if job is not None and kind == "cancel":
                job.cancel(payload)
            elif job is not None:
                job.steer(payload)
            continue
        for done in [i for i, j in jobs.items() if j.finished.is_set()]:
            del jobs[done]
        if kind == "load":
            jobs[job_id] = engine.load(*payload, into=ForwardedJob(outbox, job_id))
        else:
            jobs[job_id] = engine.generate(payload, into=ForwardedJob(outbox, job_id, payload))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(sys.argv[1])))

"""Record a streaming response into the store: text is written at least every 0.5 s, so a killed
process loses at most the last half second; inspection runs on each delta and is stored at the end
(without the o200k_base counts unless that table is loaded already: `inspect.tokens.with_o200k`).

The one way every surface (`run`, `compare`, the app) records a response: read the job through
`recorder.follow(job)`, which feeds each event it hands out to the recorder on the reading thread.
Feeding is cheap (a buffer and the incremental inspector); a background thread does the writing.

    with Recorder.for_prompt(store, prompt, info, sampling) as recorder:
        for event in recorder.follow(job):
            ...
"""

from __future__ import annotations

import sqlite3
import threading

from workbench.engine.events import Answer, Done, Failed, Stats, Steered, Think, merge_deltas
from workbench.engine.job import collect
from workbench.errors import UserError
from workbench.inspect import Inspector
from workbench.sessions.store import problem
from workbench.models.identity import folder_sha256

FLUSH_EVERY = 0.5  # seconds
STATUS_OF_FINISH = {"stop": "complete", "length": "complete", "cancelled": "stopped", "loop": "stopped",
                    "error": "stopped"}


class Recorder:
    def __init__(self, store, session_id: int, prompt: str, info=None, sampling=None, label: str | None = None,
                 flush_every: float = FLUSH_EVERY, on_saved=None, parent_id: int | None = None,
                 thinking_prefix: str = "") -> None:
        """`parent_id`: the turn this response follows when it is not the last one (a fork);
        `thinking_prefix`: the thinking it continues (`ChatRequest.continue_thinking`), stored before it."""
        self.store, self.session_id = store, session_id
        self.on_saved = on_saved  # called once everything is in the store, on the thread that finished it
        self.inspector = Inspector(prompt)
        columns = response_columns(info, sampling)
        if parent_id is not None:
            columns["parent_id"] = parent_id
        self.turn_id = store.start_response(session_id, label=label, **columns)
        self.status: str | None = None
        self.saved = False
        self.steered: list[dict] = []  # where the engine wrote into the thinking: kind, at (characters), text
        self._thinking_chars = len(thinking_prefix)
        self._think: list[str] = [thinking_prefix] if thinking_prefix else []  # received, not yet written
        if thinking_prefix:
            self.inspector.feed_thinking(thinking_prefix)
        self._answer: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flush_every = flush_every
        self._writer = threading.Thread(target=self._write_loop, name="session-writer", daemon=True)
        self._writer.start()

    @classmethod
    def for_prompt(cls, store, prompt: str, info=None, sampling=None, kind: str = "run", **kw) -> "Recorder":
        """A new session holding the prompt and this response, written together (a full disk leaves no half)."""
        recorder = None
        try:
            with store.transaction():
                session_id = store.new_session(title_of(prompt), kind)
                store.add_turn(session_id, "user", prompt)
                recorder = cls(store, session_id, prompt, info, sampling, **kw)
        except BaseException:
            if recorder is not None:  # the commit failed: its writer has nothing to write
                recorder._stop.set()
            raise
        return recorder

    # ---- the caller's loop ---------------------------------------------------------------------
    def follow(self, job) -> "RecordedJob":
        """The job to read instead of `job`: every event read from it is recorded."""
        return RecordedJob(job, self)

    def feed(self, event) -> None:
        kind = type(event)
        if kind is Steered:
            self.steered.append({"kind": event.kind, "at": self._thinking_chars, "text": event.text})
        if kind is Think or kind is Steered:
            with self._lock:
                self._think.append(event.text)
            self._thinking_chars += len(event.text)
            self.inspector.feed_thinking(event.text)
        elif kind is Answer:
            with self._lock:
                self._answer.append(event.text)
            self.inspector.feed_answer(event.text)
        elif kind is Done:
            self.finish(STATUS_OF_FINISH.get(event.stats.finish_reason, "complete"), event.stats)
        elif kind is Failed:
            self.finish("stopped", error=event.message)

    # ---- writing -------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while not self._stop.wait(self._flush_every):
            try:
                self.flush()
            except sqlite3.Error:
                pass  # e.g. locked for longer than the busy timeout: the text is kept, tried again next time

    def flush(self) -> None:
        with self._lock:
            if not (self._think or self._answer):
                return
            thinking, answer = "".join(self._think), "".join(self._answer)
            self._think, self._answer = [], []
        try:
            self.store.append_response(self.turn_id, thinking, answer)
        except sqlite3.Error:
            with self._lock:  # put it back in front of what arrived meanwhile
                self._think.insert(0, thinking)
                self._answer.insert(0, answer)
            raise

    def finish(self, status: str, stats: Stats | None = None, error: str | None = None) -> None:
        """End the response: `stats` of a Done, or the `error` of a Failed, or neither (interrupted)."""
        if self.status is not None:
            return
        self.status = status
        self._stop.set()
        self._writer.join()
        stored = (dict(stats.to_dict(), **({"steered": self.steered} if self.steered else {})) if stats is not None else
                  {"finish_reason": "error", "error": error} if error is not None else None)
        try:
            self.flush()
            self.store.finish_response(self.turn_id, status, stored, self.inspector.report(stats, load_o200k=False))
        except sqlite3.Error as e:
            raise UserError(f"the response is not completely saved: {problem(self.store.path, e, 'write to')}") from None
        self.saved = True  # everything is in the store
        if self.on_saved is not None:
            self.on_saved()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        # Left without a Done (an exception, a second Ctrl-C): keep what came, say it was cut short.
        if self.status is None:
            self.finish("interrupted", Stats(finish_reason="cancelled") if exc_type else None)


class RecordedJob:
    """A job whose events also go to a Recorder, fed on the thread that reads them. Implements the job
    protocol (`workbench.engine.protocol.Job`)."""

    def __init__(self, job, recorder: Recorder) -> None:
        self.job, self.recorder = job, recorder
        self.finished = job.finished

    def cancel(self, reason: str = "cancelled") -> None:
        self.job.cancel(reason)

    def stop_reason(self) -> str | None:
        return self.job.stop_reason()

    def answer_now(self) -> None:
        self.job.answer_now()

    def extend(self) -> None:
        self.job.extend()

    def get(self, timeout: float | None = None):
        event = self.job.get(timeout)
        self.recorder.feed(event)
        return event

    def get_many(self, window: float) -> list:
        """As `Job.get_many`; the recorder gets the window's deltas merged (one feed per run of a kind, not per
        token: its inspector scans each feed). So what the inspector notices mid-stream (a loop's
        `loop_at` offset) lands at the end of a frame."""
        events = self.job.get_many(window)
        for event in merge_deltas(events):
            self.recorder.feed(event)
        return events

    def __iter__(self):
        for event in self.job:
            try:
                self.recorder.feed(event)
            except UserError:  # the store failed as the response ended: the caller still gets the event
                yield event
                raise
            yield event

    def collect(self):
        return collect(self)


class NoRecorder:
    """`--no-save`: the same interface, doing nothing."""

    turn_id = session_id = None

    def follow(self, job):
        return job

    def feed(self, event) -> None:
        pass

    def __enter__(self) -> "NoRecorder":
        return self

    def __exit__(self, *exc) -> None:
        pass


def title_of(prompt: str) -> str:
    line = " ".join(prompt.split())
    return (line[:77] + "…") if len(line) > 78 else (line or "(empty prompt)")


def response_columns(info, sampling) -> dict:
    """Model, adapter (each with its identity sha256), effective sampling settings and seed of a response."""
    out: dict = {}
    if info is not None:
        # the same identity a report card records as model_sha256
        out.update(model=info.name, model_hash=folder_sha256(info.path),
                   adapter=info.adapter, adapter_hash=folder_sha256(info.adapter))
    if sampling is not None:
        if info is not None and info.profile:
            from workbench.engine.profiles import Profile

            sampling = sampling.over(Profile.from_dict(info.profile).sampling)
        out.update(sampling=sampling.to_dict(), seed=sampling.seed)
    return out


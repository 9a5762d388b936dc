"""`Job`: the queue-backed implementation of the job protocol (`protocol.Job`) every engine hands out."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

from workbench.engine.events import TERMINAL, Answer, Event, Steered, Think
from workbench.inspect.loops import LoopDetector


class Job:
    """The events of one submitted job, in order, ending with one terminal event.

    `stop_on_loop`: the job cancels itself (finish reason "loop") once its thinking is stuck in a
    repetition loop; whichever engine generates it stops within a token, as for any cancel.
    `answer_on_loop`: instead, it asks its engine to answer now (a Steered "loop" cut).
    Steering requests (`answer_now`, `extend`) wait in the job until the engine takes them between tokens."""

    def __init__(self, stop_on_loop: bool = False, answer_on_loop: bool = False) -> None:
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._stop_reason: str | None = None
        self._loops = LoopDetector() if stop_on_loop or answer_on_loop else None
        self._loop_action = "answer" if answer_on_loop else "stop"
        self._steers: queue.SimpleQueue = queue.SimpleQueue()
        self.finished = threading.Event()

    @classmethod
    def for_request(cls, request) -> "Job":
        return cls(stop_on_loop=request.stop_on_loop, answer_on_loop=request.answer_on_loop)

    # engine side
    def put(self, event: Event) -> None:
        self.watch(event)
        self._events.put(event)
        if isinstance(event, TERMINAL):
            self.finished.set()

    def watch(self, event: Event) -> None:
        """What the job itself does with an event on its way out (the loop check)."""
        if self._loops is not None and type(event) is Think and not self._loops.loop:
            self._loops.feed(event.text)
            if self._loops.loop:
                if self._loop_action == "answer":
                    self.steer("loop")
                else:
                    self.cancel("loop")

    def stop_reason(self) -> str | None:
        return self._stop_reason

    def take_steer(self) -> str | None:
        """The oldest steering request not yet acted on ("answer_now" | "extend" | "loop"), or None."""
        try:
            return self._steers.get_nowait()
        except queue.Empty:
            return None

    # caller side
    def steer(self, kind: str) -> None:
        self._steers.put(kind)

    def answer_now(self) -> None:
        """While thinking: close it at once (the budget message, `</think>`) and let the answer stream."""
        self.steer("answer_now")

    def extend(self) -> None:
        """While thinking: the model's next `</think>` becomes the wait text, and thinking goes on."""
        self.steer("extend")

    def cancel(self, reason: str = "cancelled") -> None:
        self._stop_reason = self._stop_reason or reason

    def get(self, timeout: float | None = None) -> Event:
        """The next event; raises queue.Empty after `timeout` seconds."""
        return self._events.get(timeout=timeout)

    def get_many(self, window: float) -> list[Event]:
        """The next event and every one after it within `window` seconds, up to a terminal one (which
        comes at once). The reader sleeps out the window instead of waking for each event."""
        events = [self._events.get()]
        if not isinstance(events[0], TERMINAL):
            self.finished.wait(window)
        while not isinstance(events[-1], TERMINAL):
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        return events

    def __iter__(self) -> Iterator[Event]:
        while True:
            event = self._events.get()
            if isinstance(event, TERMINAL):
                self.finished.set()  # `put` sets it just after queueing: a reader may get there first
                yield event
                return
            yield event

    def collect(self) -> tuple[str, str, Event]:
        """Block until the end: (thinking, answer, terminal event)."""
        return collect(self)


def collect(job) -> tuple[str, str, Event]:
    """Read any job to its end: (thinking, answer, terminal event). Steered text is thinking."""
    thinking, answer, last = [], [], None
    for last in job:
        if isinstance(last, (Think, Steered)):
            thinking.append(last.text)
        elif isinstance(last, Answer):
            answer.append(last.text)
    return "".join(thinking), "".join(answer), last


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__

"""An engine that plays scripted events at a given rate, without a model or MLX.

Part of the product, not only a test double: `scripts/bench_tui.py` measures the app's drawing cost
with it, and the app's tests drive the app with it. Implements `workbench.engine.protocol.Engine`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from workbench.engine.events import Answer, ChatRequest, Done, Failed, Loaded, Loading, ModelInfo, Stats, Steered, Think
from workbench.engine.job import Job
from workbench.engine.protocol import Capabilities


@dataclass
class Script:
    """What one generate() plays: deltas (Think/Answer) then Done, or a Failed after them."""

    events: list = field(default_factory=list)
    fail: str | None = None  # end with Failed(fail) instead of Done
    hold: threading.Event | None = None  # if set, wait for it after the deltas (mid-stream tests)
    stats: Stats | None = None  # fixed numbers for Done (reproducible snapshots) instead of measured ones


def script_from_text(thinking: str, answer: str, chunk: int = 1) -> Script:
    """One delta per `chunk` characters (one token each)."""
    events = [Think(thinking[i:i + chunk], 1) for i in range(0, len(thinking), chunk)]
    events += [Answer(answer[i:i + chunk], 1) for i in range(0, len(answer), chunk)]
    return Script(events)


class ScriptedEngine:
    """Steering, as a script can: a thinking budget or answer now skips the rest of the scripted
    thinking (after a Steered with the budget message); a thinking continued counts against the budget
    (a character a token), so one longer than it is cut before the script's thinking; the minimum and
    extend are not played."""

    capabilities = Capabilities(steer=True)

    def __init__(self, scripts=(), rate: float = 0.0, load_delay: float = 0.0, load_error: str | None = None,
                 name: str = "scripted", load_gate: threading.Event | None = None, device: str = "") -> None:
        self.scripts = list(scripts)  # one per generate(); the last one repeats
        self.rate = rate  # deltas per second; 0 = as fast as possible
        self.load_delay = load_delay
        self.load_error = load_error
        self.load_gate = load_gate  # if set, loading waits for it (tests of the loading state)
        self.name = name
        self.device = device  # what ModelInfo.device says once loaded ("cpu": as MLX on this machine's cores)
        self.info: ModelInfo | None = None
        self.requests: list[ChatRequest] = []  # what the app sent (tests read it)
        self.loads: list[tuple] = []
        self.emitted = 0  # deltas put so far (the benchmark's "backlog" is emitted - rendered)
        self.memory = None  # what memory_gb() reports (tests set a figure)

    def load(self, model=None, adapter=None, trust_remote_code: bool = False) -> Job:
        job = Job()
        self.loads.append((model, adapter))

        def run():
            job.put(Loading(str(model or self.name)))
            time.sleep(self.load_delay)
            if self.load_gate is not None:
                self.load_gate.wait()
            if self.load_error:
                job.put(Failed(self.load_error))
                return
            self.info = ModelInfo(name=str(model or self.name), path="/nowhere", model_type="scripted",
                                  adapter=str(adapter) if adapter else None, device=self.device)
            job.put(Loaded(self.info))

        threading.Thread(target=run, daemon=True).start()
        return job

    def memory_gb(self) -> float | None:
        return self.memory

    def generate(self, request: ChatRequest) -> Job:
        self.requests.append(request)
        script = self.scripts[min(len(self.requests), len(self.scripts)) - 1] if self.scripts else Script()
        job = Job.for_request(request)
        threading.Thread(target=self._play, args=(job, script, request), daemon=True).start()
        return job

    def _play(self, job: Job, script: Script, request: ChatRequest) -> None:
        stats = Stats(prompt_tokens=sum(len(m.content) for m in request.messages))
        start = time.perf_counter()
        first = think_end = None
        budget = request.max_thinking_tokens
        prefix = len(request.continue_thinking or "")  # a thinking continued counts against the budget (a token a character)
        played = 0  # events put so far: the pace counts these, not the ones a cut skipped
        for event in script.events:
            if job.stop_reason():
                break
            if isinstance(event, Think) and stats.thinking_cut:
                continue
            cut = ("budget" if isinstance(event, Think) and budget is not None and prefix + stats.thinking_tokens >= budget
                   else None)
            steer = job.take_steer() if isinstance(event, Think) else None
            if cut or steer in ("answer_now", "loop"):
                stats.thinking_cut = cut or steer
                job.put(Steered(stats.thinking_cut, request.budget_message))
                continue
            if self.rate:  # pace against the clock (not per-event sleeps) so the rate holds on average
                delay = start + played / self.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            now = time.perf_counter()
            first = first or now
            if isinstance(event, Think):
                stats.thinking_tokens += event.tokens
            elif isinstance(event, Answer):
                think_end = think_end or now
                stats.answer_tokens += event.tokens
            job.put(event)
            played += 1
            self.emitted += getattr(event, "tokens", 0)  # a Drafted event carries none
        if script.hold is not None:
            while not script.hold.wait(0.01) and not job.stop_reason():
                pass
        end = time.perf_counter()
        if script.fail:
            job.put(Failed(script.fail))
            return
        first, think_end = first or end, think_end or end
        stats.time_to_first_token = first - start
        stats.thinking_time = think_end - first
        stats.answer_time = end - think_end
        stats.total_time = end - start
        stats.thinking_closed = stats.answer_tokens > 0 or bool(stats.thinking_cut)
        stats.finish_reason = job.stop_reason() or "stop"
        job.put(Done(script.stats or stats))

    def close(self, timeout: float = 5.0) -> None:
        pass

"""The workbench app: thinking and answer side by side, streamed live from an engine.

The app takes any engine (`workbench.engine.protocol.Engine`: the MLX engine in a child process, a
remote endpoint, the scripted engine in tests). Engine jobs are read in thread workers, which merge the deltas
of each frame (1/10 s; 1/5 s when MLX computes on this machine's CPU) into one `Chunk` message, so a
fast model costs the UI a bounded number of updates.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Input, Markdown

from workbench.engine.events import (
    TERMINAL, Answer, ChatRequest, Decoding, Done, Drafted, Failed, Loaded, Loading, Message, Sampling, Steered, Think,
)
from workbench.machine import lower_thread_priority, restore_thread_priority
from workbench.tui.messages import Chunk, Drafting, Finished, ModelFailed, ModelLoaded, ModelLoading, Response, Steer
from workbench.tui.panes import StatusLine, ThinkingView, Transcript, TurnView
from workbench.tui.welcome import Welcome
from workbench.terminal import printable
from workbench.tui.steer_screens import ThinkingSettings


HERE = Path(__file__).parent  # .tcss files beside the code (absolute, so subclasses elsewhere work)
FRAME = 1 / 10  # how long a worker gathers deltas into one Chunk
CPU_FRAME = 1 / 5  # ... when the engine computes on this machine's CPU cores: drawing competes with it there
STATUS_FRAMES = 5  # the status line redraws every this many frames while a phase streams (its own update)
NARROW = 100  # below this many columns the panes stack vertically
UI_NICE = 19  # how far the app's own threads step back from the engine's (Linux; 19 = the lowest priority)


THINKING_LAYOUTS = ("", "thinking-wide", "thinking-hidden")  # ctrl+t cycles through them


STEER_LABELS = {"budget": "budget reached", "answer_now": "answered now", "loop": "loop cut", "wait": "wait"}


def steered_runs(events: list) -> list:
    """A frame's events as runs of deltas (lists) split at each Steered (kept in order between them)."""
    runs: list = [[]]
    for e in events:
        if isinstance(e, Steered):
            runs += [e, []]
        else:
            runs[-1].append(e)
    return runs


class Starting:
    """The job slot from Enter until the engine starts (two screen refreshes later)."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class WorkbenchApp(App):
    CSS_PATH = HERE / "app.tcss"
    TITLE = "Reasoning Workbench"
    BINDINGS = [
        Binding("enter", "submit", "Send"),
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+o", "pick_model", "Model"),
        Binding("ctrl+s", "settings", "Settings"),
        Binding("ctrl+t", "toggle_thinking", "Thinking pane"),
        Binding("ctrl+l", "toggle_latex", "LaTeX source"),
        Binding("ctrl+g", "compare", "Compare"),
        Binding("ctrl+b", "answer_now", "Answer now"),
        Binding("ctrl+y", "extend", "Extend"),
        Binding("f12", "edit_thinking", "Edit thinking"),
        Binding("ctrl+f", "fork", "Fork"),
        Binding("shift+f12", "answer_at_budget", "Answer at budget B", show=False),
        Binding("f11", "thinking_settings", "Thinking budget", show=False),
        Binding("f10", "train", "Train", show=False),
        Binding("f1", "evals", "Evals", show=False),
        Binding("f2", "focus('thinking')", "Focus thinking", show=False),
        Binding("f3", "focus('answer')", "Focus answer", show=False),
        Binding("f4", "focus('prompt')", "Focus prompt", show=False),
        Binding("f5", "copy('answer')", "Copy answer", show=False),
        Binding("f6", "copy('thinking')", "Copy thinking", show=False),
        Binding("f7", "panel('sessions')", "Sessions", show=False),
        Binding("f8", "panel('inspector')", "Inspector", show=False),
        Binding("f9", "panel('next_marker')", "Next marker", show=False),
        Binding("shift+f9", "panel('previous_marker')", "Previous marker", show=False),
    ]
    # Shown in the command palette (ctrl+p) as well: (title, help, action).
    COMMANDS_LIST = [
        ("Stop generation", "Stop the response being generated (Esc)", "stop"),
        ("New chat", "Forget the conversation and start over (ctrl+n)", "new_chat"),
        ("Regenerate", "Ask the last prompt again (ctrl+r)", "regenerate"),
        ("Pick a model", "Load another local model (ctrl+o)", "pick_model"),
        ("Sampling settings", "Temperature, top-p, max tokens, seed (ctrl+s)", "settings"),
        ("Answer now", "Stop thinking: the budget message, </think>, and the answer streams (ctrl+b)", "answer_now"),
        ("Extend the thinking", "One more \"Wait\": while thinking, its next close; after, go on from it (ctrl+y)",
         "extend"),
        ("Edit the thinking", "Edit the selected turn's thinking; Enter continues from the edit (F12)", "edit_thinking"),
        ("What would it have answered at budget B?", "The selected turn's thinking cut at B tokens, its answer "
         "beside the full one; nothing saved (shift+F12)", "answer_at_budget"),
        ("Fork", "A new branch from the selected turn: later turns stay saved on the old one (ctrl+f)", "fork"),
        ("Thinking budget and effort", "Budget, minimum, effort, keep earlier thinking, loop rescue (F11)",
         "thinking_settings"),
        ("Compare", "Run the prompt on other models, temperatures or samples, side by side (ctrl+g)", "compare"),
        ("Train (GRPO)", "Launch `workbench train grpo` or watch a run: curves, latest sample, stop (F10)", "train"),
        ("Evals: report cards and budget curves", "This model's cards, a sweep's accuracy by thinking budget; "
         "launch a sweep and watch its curve (F1)", "evals"),
        ("Thinking pane: wide / hidden / normal", "Cycle the thinking pane's width (ctrl+t)", "toggle_thinking"),
        ("LaTeX source / rendered", "Show math as written or as Unicode (ctrl+l)", "toggle_latex"),
        ("Focus thinking", "Move focus to the thinking pane (F2)", "focus('thinking')"),
        ("Focus answer", "Move focus to the answer pane (F3)", "focus('answer')"),
        ("Copy answer", "Copy the last answer to the clipboard (F5)", "copy('answer')"),
        ("Copy thinking", "Copy the last thinking to the clipboard (F6)", "copy('thinking')"),
        ("Sessions", "Saved sessions: search, reopen (F7)", "panel('sessions')"),
        ("Inspector", "Chain-of-thought metrics, steps, markers (F8)", "panel('inspector')"),
        ("Next reflection marker", "Jump to the next 'wait', 'hmm', ... in the thinking (F9)", "panel('next_marker')"),
        ("Light / dark", "Switch between the light and dark theme", "toggle_dark"),
    ]

    def __init__(self, engine: Any, model: str | None = None, adapter: str | None = None,
                 sampling: Sampling = Sampling(), trust_remote_code: bool = False,
                 decoding: Decoding = Decoding()) -> None:
        super().__init__()
        self._nice_before: int | None = None
        self.engine = engine
        self.model_name, self.adapter = model, adapter
        self.load_options = {"trust_remote_code": True} if trust_remote_code else {}
        self.sampling = sampling
        self.decoding = decoding  # KV-cache bits and draft model of every request (ctrl+s)
        self.history: list[Message] = []  # finished turns, thinking kept in Message.thinking
        self.branch: list[Response] = []  # the responses of `history`, in order (a turn per response)
        self.thinking_settings = ThinkingSettings()
        self.fork_parent: int | None = None  # the stored turn the next prompt follows (after a fork)
        self.ready = False  # a model is loaded
        self.load_failed = False
        self.job = None  # the generate job running, if any
        self.at_budget_job = None  # the latest "answer at budget B" (not recorded)
        self.response_no = 0  # number of the live response (messages of older ones are ignored)
        self.turn_view: TurnView | None = None
        self.raw_mode = False
        self.last: Response | None = None
        self.responses: list[Response] = []
        self._layout = 0
        self.rendered_tokens = 0  # tokens handed to the panes so far (scripts/bench_tui.py reads it)
        self.answer_raw = ""
        self._blink: bool | None = None  # the prompt cursor's blinking, while held still
        self.loaded_from: tuple = (model, adapter)  # what load_model was last asked for
        self.comparing = False
        self.compare_job = None  # the compare variant's job running, if any
        self.compare_stopped = False
        self.eval_run = None  # the budget sweep launched from the Evals screen (tui/evals_screen.EvalRun)

    # ---- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # Kept: the stream uses them ~10 times a second, and a query walks the whole DOM.
        self._thinking_view, self._status_line = ThinkingView(id="thinking"), StatusLine(id="status")
        # #main is where side panels (a sessions sidebar, an inspector) mount beside #panes.
        with Horizontal(id="main"):
            with Horizontal(id="panes"):
                yield self._thinking_view
                with Transcript(id="answer"):
                    yield Welcome()  # the first screen, until the first turn is there
        yield self._status_line
        yield Input(placeholder="Ask something (Enter to send, ctrl+p for commands)", id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        # The engine thread needs the GIL for a little Python per token; with the default 5 ms switch
        # interval it can wait that long behind a screen update; 1 ms shortens that wait.
        sys.setswitchinterval(0.001)
        # Where cores are few, the screen waits for generation instead of stalling it (an MLX step on
        # the CPU uses every core); threads the app starts from now on inherit the lower priority.
        self._nice_before = lower_thread_priority(UI_NICE)
        self.query_one("#thinking").border_title = "Thinking"
        self.query_one("#answer").border_title = "Answer"
        self.query_one("#prompt").focus()
        self.load_model(self.model_name, self.adapter)
        from workbench.tui.sessions_panel import SessionsUI

        self.sessions_ui = SessionsUI.install(self)  # saves every response; sessions sidebar, inspector

    def on_resize(self, event) -> None:
        self.query_one("#panes").set_class(event.size.width < NARROW, "stacked")

    def on_unmount(self) -> None:
        for job in (self.job, self.at_budget_job):
            if job is not None:
                job.cancel()
        if self.eval_run is not None and self.eval_run.launched.process.poll() is None:
            # as Ctrl-C: finished samples are kept for `workbench eval ... --resume`
            self.eval_run.launched.process.send_signal(signal.SIGINT)
        restore_thread_priority(self._nice_before)

    @property
    def status(self) -> StatusLine:
        return self._status_line

    @property
    def thinking(self) -> ThinkingView:
        return self._thinking_view

    # ---- loading -----------------------------------------------------------------------------
    def load_model(self, model: str | None, adapter: str | None = None) -> None:
        self.ready = self.load_failed = False
        self.loaded_from = (model, adapter)
        self.status.loading(str(model or "default model"))
        self._spin = self.set_interval(0.1, lambda: self.status.loading(self.status.model))
        self._load_on_worker(model, adapter)

    @work(thread=True, group="load", exit_on_error=False)
    def _load_on_worker(self, model: str | None, adapter: str | None) -> None:
        # engine.load is called here too, not on the UI thread: an engine may block in it (a remote one
        # whose server does not answer); the screen stays live and the status line says "loading".
        try:
            job = self.engine.load(model, adapter, **self.load_options)
        except Exception as e:  # noqa: BLE001 - an engine that cannot even start loading
            self.post_message(ModelFailed(f"{type(e).__name__}: {e}"))
            return
        for event in job:
            if isinstance(event, Loading):
                self.post_message(ModelLoading(event.model))
            elif isinstance(event, Loaded):
                self.post_message(ModelLoaded(event.info))
            elif isinstance(event, Failed):
                self.post_message(ModelFailed(event.message))

    def on_model_loading(self, message: ModelLoading) -> None:
        self.status.model = message.name

    def on_model_loaded(self, message: ModelLoaded) -> None:
        self._spin.stop()
        self.ready = True
        self.model_name = message.info.name
        self.status.model = printable(message.info.name)
        remote = message.info.location not in ("", "local")
        self.status.where = printable(message.info.location) if remote else ""
        self.status.context = self.decoding.context
        self.status.show("ready")
        self.sub_title = printable(f"{message.info.name} on {message.info.location}" if remote else message.info.name)
        if remote and self.engine.capabilities.cluster:
            self._read_cluster()

    @work(thread=True, group="cluster", exclusive=True, exit_on_error=False)
    def _read_cluster(self) -> None:
        """Our cluster endpoint says which layers each rank holds and its memory; other servers have no
        `/v1/cluster` (or fail): then the status line shows just where the model runs."""
        from workbench.distributed.shard import summary

        try:
            ranks = self.engine.cluster().get("ranks")
            line = summary(ranks) if isinstance(ranks, list) and ranks else ""
        except Exception:  # noqa: BLE001 - not our cluster, or it is gone: nothing to summarise
            return
        self.call_from_thread(self.status.set_cluster, line)

    def on_model_failed(self, message: ModelFailed) -> None:
        self._spin.stop()
        self.load_failed = True
        self.status.error(f"could not load the model: {message.message}")
        self.notify(printable(message.message), title="Model failed to load", severity="error", markup=False, timeout=10)

    # ---- a response --------------------------------------------------------------------------
    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "prompt":
            await self.action_submit()

    async def action_submit(self) -> None:
        box = self.query_one("#prompt", Input)
        prompt = box.value.strip()
        if not prompt:
            box.focus()
            return
        if not self.ready:
            self.notify("The model failed to load: ctrl+o picks another." if self.load_failed
                        else "The model is still loading; your prompt stays here.", markup=False)
            return
        if self.job is not None or self.comparing:
            self.notify("Still generating: Esc stops it.", markup=False)
            return
        box.value = ""
        await self.ask(prompt)

    async def ask(self, prompt: str, thinking: str | None = None, prompt_turn: int | None = None) -> None:
        """Send `prompt` with the conversation so far (the engine leaves earlier thinking out).
        `thinking`: continue from this thinking (an edit, an extension) instead of starting afresh;
        `prompt_turn`: the stored prompt it answers again (no new prompt row)."""
        steers = self.thinking_settings.steers or thinking is not None
        if steers and not self.engine.capabilities.steer:
            self.notify("This engine cannot steer the thinking (budgets, edits): clear them with F11.",
                        severity="warning", markup=False)
            return
        if self.decoding.local and not self.engine.capabilities.decode:
            self.notify("This engine decodes on its own machine: clear the context, KV bits and the draft "
                        "model (ctrl+s).", severity="warning", markup=False)
            return
        settings = self.thinking_settings.request_fields() if self.engine.capabilities.steer else {}
        if self.engine.capabilities.decode:
            settings["decoding"] = self.decoding
        request = ChatRequest((*self.history, Message("user", prompt)), self.sampling,
                              stop_on_loop=self.sessions_ui.stop_on_loop, continue_thinking=thinking, **settings)
        self.response_no += 1
        self.turn_view = TurnView(prompt, self.raw_mode)
        self.turn_view.request = request
        self.turn_view.prompt_turn = prompt_turn
        await self.query_one(Transcript).mount(self.turn_view)
        self.thinking.clear()
        self.thinking.append(thinking or "")
        self.status.budget = self.thinking_settings.budget
        self.answer_raw = ""  # the live turn's answer as the model wrote it
        self.status.every = STATUS_FRAMES * self.frame()
        self.status.started()
        self._hold_cursor(True)
        # The engine starts once the new turn is laid out and drawn, so that work does not compete
        # with generation for the CPU; Esc in between is kept (see Starting).
        self.job = Starting()
        self.call_after_refresh(self._start_generation, request, self.response_no, 2)

    def _hold_cursor(self, hold: bool) -> None:
        """The prompt's cursor holds still while a response streams (each blink is a screen update),
        then blinks again if it did before."""
        box = self.query_one("#prompt", Input)
        if hold and self._blink is None:
            self._blink, box.cursor_blink = box.cursor_blink, False
        elif not hold and self._blink is not None:
            box.cursor_blink, self._blink = self._blink, None

    def _start_generation(self, request: ChatRequest, response_no: int, refreshes: int = 1) -> None:
        if response_no != self.response_no or not isinstance(self.job, Starting):
            return  # a new chat (or the app closing) came first
        if refreshes > 1:  # new widgets take two layout passes: the second sets their sizes
            self.call_after_refresh(self._start_generation, request, response_no, refreshes - 1)
            return
        starting = self.job
        try:
            again = self.turn_view.prompt_turn  # a stored prompt answered again, or None for a new one
            self.job = self.sessions_ui.record(self.engine.generate(request), request, again,
                                               self.fork_parent if again is None else None,
                                               request.continue_thinking or "")
            if again is None:
                self.fork_parent = None
        except Exception as e:  # noqa: BLE001 - e.g. the session store failing: the turn ends with it
            self.job = None
            self.post_message(Finished(response_no, None, f"engine: {e}"))
            return
        if starting.cancelled:
            self.job.cancel()  # the engine ends it as any stopped job: the turn finishes as usual
        self._read_generation(self.job, response_no)

    def frame(self) -> float:
        info = self.engine.info  # of the model loaded
        return CPU_FRAME if info is not None and info.device == "cpu" else FRAME

    @work(thread=True, group="generate", exit_on_error=False)
    def _read_generation(self, job, response_no: int) -> None:
        """Read the job's events; post them merged per frame; end with one Finished."""
        frame = self.frame()
        while True:
            try:
                events = job.get_many(frame)
            except Exception as e:  # noqa: BLE001 - a broken engine must not take the app down
                self.post_message(Finished(response_no, None, f"engine: {e}"))
                return
            for run in steered_runs(events):
                if isinstance(run, Steered):
                    self.post_message(Steer(response_no, run.kind, run.text))
                    continue
                think = [e for e in run if isinstance(e, Think)]
                answer = [e for e in run if isinstance(e, Answer)]
                drafted = [e for e in run if isinstance(e, Drafted)]
                if drafted:  # before the chunk, whose redraw of the status line shows it
                    self.post_message(Drafting(response_no, drafted[-1].accepted, drafted[-1].proposed))
                if think or answer:
                    self.post_message(Chunk(response_no, "".join(e.text for e in think),
                                            "".join(e.text for e in answer),
                                            sum(e.tokens for e in think), sum(e.tokens for e in answer)))
            last = events[-1]
            if isinstance(last, Done):
                self.post_message(Finished(response_no, last.stats))
                return
            if isinstance(last, Failed):
                self.post_message(Finished(response_no, None, last.message))
                return
            if isinstance(last, TERMINAL):
                self.post_message(Finished(response_no, None, f"unexpected event {type(last).__name__}"))
                return

    def on_chunk(self, chunk: Chunk) -> None:
        if chunk.response_no != self.response_no or self.turn_view is None or not self._thinking_view.is_attached:
            return  # an old turn, or the app is shutting down
        self.thinking.append(chunk.thinking)
        if chunk.answer:
            self.answer_raw += chunk.answer
            # The Markdown work runs in the turn's own message queue, so the app stays free for keys.
            self.turn_view.call_next(self.turn_view.write, chunk.answer)
        self.status.progress(chunk.thinking_tokens, chunk.answer_tokens)
        self.rendered_tokens += chunk.thinking_tokens + chunk.answer_tokens

    def on_drafting(self, message: Drafting) -> None:
        if message.response_no == self.response_no and self._status_line.is_attached:
            self.status.drafted(message.accepted, message.proposed)

    def on_steer(self, message: Steer) -> None:
        if message.response_no != self.response_no or not self._thinking_view.is_attached:
            return
        label = STEER_LABELS.get(message.kind, message.kind)
        self.thinking.append(message.text, shown=f"⟦{label}⟧{message.text}⟦/{label}⟧")
        self.status.show(label, apart=True)

    def on_finished(self, message: Finished) -> None:
        if message.response_no != self.response_no or self.turn_view is None or not self._thinking_view.is_attached:
            return
        view, self.job = self.turn_view, None
        self._hold_cursor(False)
        thinking = self.thinking.raw
        view.call_next(view.finish, thinking, message.stats, message.error)  # after its queued writes
        if message.error:
            self.status.error(message.error)
            self.notify(printable(message.error), title="Generation failed", severity="error", markup=False, timeout=10)
        else:
            self.status.finished(message.stats)
        recorder = getattr(self.sessions_ui, "recorder", None)
        ids = (recorder.prompt_turn, recorder.turn_id) if recorder is not None and self.sessions_ui.store else (None, None)
        self.response_finished(Response(view.prompt, thinking, self.answer_raw, message.stats, message.error,
                                        self.engine.info, view.request, *ids))

    def response_finished(self, response: Response) -> None:
        """The one place each finished response goes. History now; a sessions sidebar or an inspector
        panel hooks in here (override, or read `self.responses`)."""
        self.last = response
        self.responses.append(response)
        if self.status.cluster:
            self._read_cluster()  # the ranks' peak memory changes with each request
        if response.error is None:
            self.history += [Message("user", response.prompt),
                             Message("assistant", response.answer, response.thinking)]
            self.branch.append(response)

    # ---- actions -----------------------------------------------------------------------------
    def action_stop(self) -> None:
        if self.comparing:
            self.compare_stopped = True
            if self.compare_job is not None:
                self.compare_job.cancel()
            self.status.show("stopping the compare …")
        if self.job is not None:
            self.job.cancel()
            self.status.show("stopping …")

    async def action_new_chat(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.job = None
        self.response_no += 1  # anything still arriving from the old turn is ignored
        self.turn_view = None
        self.answer_raw = ""
        self.history.clear()
        self.branch.clear()
        self.fork_parent = None
        self._hold_cursor(False)
        await self.query_one(Transcript).remove_children()
        self.thinking.clear()
        if self.ready:
            self.status.show("new chat")
        self.query_one("#prompt").focus()

    async def action_regenerate(self) -> None:
        if self.job is not None or self.comparing or self.last is None or not self.ready:
            self.notify("Nothing to regenerate yet." if self.last is None else "Still generating: Esc stops it.",
                        markup=False)
            return
        last = self.last
        if last.error is None and len(self.history) >= 2:
            del self.history[-2:]
            del self.branch[-1:]
        views = self.query(TurnView)
        if views:
            await views.last().remove()
        self.last = None
        await self.ask(last.prompt)

    # ---- steering the thinking ------------------------------------------------------------------
    def _can_steer(self) -> bool:
        if not self.engine.capabilities.steer:
            self.notify("This engine cannot steer the thinking.", markup=False)
        return self.engine.capabilities.steer

    def action_answer_now(self) -> None:
        """While thinking streams: close it (the budget message, `</think>`) and let the answer stream."""
        if self.job is None or isinstance(self.job, Starting):
            self.notify("Answer now works while a response is thinking.", markup=False)
            return
        if self._can_steer():
            self.job.answer_now()
            self.status.show("answering now …", apart=True)

    async def action_extend(self) -> None:
        """One more "Wait": while thinking, its next close becomes the wait text; after a response, go
        on thinking from the end of its thinking."""
        if not self._can_steer():
            return
        if self.job is not None and not isinstance(self.job, Starting):
            self.job.extend()
            self.status.show("the next close of the thinking becomes \"Wait\"", apart=True)
            return
        if self.branch and not self.comparing:
            await self.continue_turn(len(self.branch) - 1, self.branch[-1].thinking + self.branch[-1].request.wait_text)
        else:
            self.notify("Nothing to extend yet.", markup=False)

    def selected_turn(self) -> int | None:
        """The index (in `branch`) of the turn holding the focus, else of the last one; None if none."""
        views = list(self.query(TurnView))[-len(self.branch):] if self.branch else []
        focused = self.focused
        for i, view in enumerate(views):
            if focused is not None and (focused is view or view in focused.ancestors):
                return i
        return len(self.branch) - 1 if self.branch else None

    def steerable_turn(self, verb: str, purpose: str) -> int | None:
        """The selected turn, if it is finished, nothing runs and the engine can steer; else says why, None."""
        index = self.selected_turn()
        if index is None or self.job is not None or self.comparing:
            self.notify(f"{verb} a finished turn (Esc stops the one running)." if index is not None
                        else f"No turn {purpose} yet.", markup=False)
            return None
        return index if self._can_steer() else None

    def action_edit_thinking(self) -> None:
        from workbench.tui.steer_screens import EditThinkingScreen

        index = self.steerable_turn("Edit the thinking of", "to edit")
        if index is None:
            return

        async def edited(text: str | None) -> None:
            if text is not None:
                await self.continue_turn(index, text)

        self.push_screen(EditThinkingScreen(self.branch[index].thinking), edited)

    def action_answer_at_budget(self) -> None:
        """What the selected turn would have answered had its thinking stopped at B tokens: the engine cuts
        its thinking there (from the KV cache) and the model answers; shown beside the full response."""
        from workbench.tui.steer_screens import AskBudgetScreen

        index = self.steerable_turn("Ask this of", "to ask about")
        if index is None:
            return
        turn = self.branch[index]
        if not turn.thinking:
            self.notify("That turn has no thinking to cut.", markup=False)
            return
        # Known only for a thinking the model wrote in one go (an edited one's prefix is not counted).
        tokens = turn.stats.thinking_tokens if turn.stats is not None and not turn.request.continue_thinking else None

        def asked(budget: int | None) -> None:
            if budget is None:
                return
            if tokens is not None and budget >= tokens:
                self.notify(f"Its thinking was {tokens:,} tokens: at a budget of {budget:,} it answers as it did.",
                            markup=False)
                return
            self.answer_at_budget(turn, budget, tokens)

        self.push_screen(AskBudgetScreen(tokens), asked)

    def answer_at_budget(self, turn: Response, budget: int, tokens: int | None = None) -> None:
        from workbench.tui.steer_screens import AtBudgetScreen

        # the turn's own request (its sampling, decoding, prompt rules), its thinking cut at the budget
        request = replace(turn.request, continue_thinking=turn.thinking, max_thinking_tokens=budget,
                          min_thinking_tokens=None)
        try:
            job = self.at_budget_job = self.engine.generate(request)
        except Exception as e:  # noqa: BLE001 - an engine that cannot start it: say so, keep the app
            self.notify(f"engine: {e}", severity="error", markup=False)
            return
        screen = AtBudgetScreen(turn.prompt, turn.thinking, turn.answer, budget, tokens, job)
        self.push_screen(screen)
        self._read_at_budget(job, screen)

    @work(thread=True, group="at_budget", exit_on_error=False)
    def _read_at_budget(self, job, screen) -> None:
        """The budget-B response, not recorded: the cut text and the answer, a frame at a time."""
        after_cut, answer = [], []
        while True:
            try:
                events = job.get_many(self.frame())
            except Exception as e:  # noqa: BLE001 - a broken engine must not take the app down
                self.call_from_thread(screen.update, "".join(after_cut), "".join(answer), True, f"engine: {e}")
                return
            for e in events:
                if isinstance(e, (Think, Steered)):
                    after_cut.append(e.text)
                elif isinstance(e, Answer):
                    answer.append(e.text)
            last = events[-1]
            error = last.message if isinstance(last, Failed) else None
            ended = isinstance(last, TERMINAL)
            self.call_from_thread(screen.update, "".join(after_cut), "".join(answer), ended, error)
            if ended:
                return

    async def continue_turn(self, index: int, thinking: str) -> None:
        """Answer turn `index`'s prompt again from `thinking` (a new branch beside that turn)."""
        turn = self.branch[index]
        await self._cut_branch(index)
        await self.ask(turn.prompt, thinking=thinking, prompt_turn=turn.prompt_turn)

    async def action_fork(self) -> None:
        """Go on from the selected turn: later turns leave the screen (they stay saved on their branch)."""
        index = self.selected_turn()
        if index is None or self.job is not None or self.comparing:
            self.notify("Fork from a finished turn." if index is not None else "No turn to fork from yet.",
                        markup=False)
            return
        if index == len(self.branch) - 1:
            self.notify("That is the last turn: your next prompt goes on from it.", markup=False)
            return
        await self._cut_branch(index + 1)
        self.fork_parent = self.branch[-1].response_turn
        self.status.show(f"forked after turn {index + 1}: the next prompt starts a branch")
        self.query_one("#prompt").focus()

    async def _cut_branch(self, index: int) -> None:
        """Leave turns `index`... of the branch (from the screen and the history)."""
        views = list(self.query(TurnView))
        for view in views[len(views) - (len(self.branch) - index):]:
            await view.remove()
        del self.branch[index:]
        del self.history[2 * index:]

    def action_thinking_settings(self) -> None:
        from workbench.tui.steer_screens import ThinkingSettingsScreen

        def saved(settings: ThinkingSettings | None) -> None:
            if settings is not None:
                self.thinking_settings = settings
                self.notify("Thinking settings saved.", markup=False, timeout=2)

        self.push_screen(ThinkingSettingsScreen(self.thinking_settings), saved)

    def action_toggle_thinking(self) -> None:
        panes = self.query_one("#panes")
        self._layout = (self._layout + 1) % len(THINKING_LAYOUTS)
        for name in THINKING_LAYOUTS[1:]:
            panes.remove_class(name)
        if THINKING_LAYOUTS[self._layout]:
            panes.add_class(THINKING_LAYOUTS[self._layout])

    async def action_toggle_latex(self) -> None:
        self.raw_mode = not self.raw_mode
        self.query_one(Transcript).set_class(self.raw_mode, "raw")
        self.thinking.raw_mode = self.raw_mode
        self.thinking.set_text(self.thinking.raw)
        for view in self.query(TurnView):
            await view.set_raw(self.raw_mode)
        self.notify("LaTeX source" if self.raw_mode else "LaTeX as Unicode", markup=False, timeout=2)

    def action_panel(self, name: str) -> None:
        self.sessions_ui.action(name)

    def action_focus(self, target: str) -> None:
        self.query_one(f"#{target}").focus()

    def action_copy(self, what: str) -> None:
        if what == "answer":
            text = self.answer_raw
        else:
            text = self.thinking.raw
        if not text:
            self.notify(f"No {what} to copy yet.", markup=False)
            return
        self.copy_to_clipboard(printable(text))
        self.notify(f"Copied the {what} ({len(text):,} characters).", markup=False, timeout=2)

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_pick_model(self) -> None:
        from workbench.models.local import list_local
        from workbench.models.recommend import fits_to_pull
        from workbench.tui.screens import PULL, ModelPicker

        def picked(path: str | None) -> None:
            if path and path.startswith(PULL):
                self.pull_model(path[len(PULL):])
            elif path:
                self.load_model(path)

        if self.comparing:  # compare is loading models on the same engine
            self.notify("Comparing: wait for it, or Esc stops it.", markup=False)
            return
        local = list_local()
        fits = fits_to_pull({m.name for m in local}, **self.fit_settings())
        self.push_screen(ModelPicker(local, self.model_name, fits), picked)

    def fit_settings(self) -> dict:
        """The KV cache a model to pull must fit: at the context and bits of the settings (32k, fp16 by default)."""
        from workbench.models.catalog import CONTEXT

        return {"context": self.decoding.context or CONTEXT, "kv_bits": self.decoding.kv_bits or 0}

    # ---- pulling a catalog model -------------------------------------------------------------
    def pull_model(self, name: str) -> None:
        from workbench.tui.screens import PullScreen

        screen = PullScreen(name)
        self.push_screen(screen)
        self._pull(name, screen)

    @work(thread=True, group="pull", exit_on_error=False)
    def _pull(self, name: str, screen) -> None:
        from workbench.errors import UserError
        from workbench.models.pull import pull

        last = [0.0]

        def on_progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= FRAME or (total and done >= total):  # at most ~10 redraws a second
                last[0] = now
                self.call_from_thread(screen.progress, done, total)

        try:
            folder = pull(name, on_progress=on_progress, **self.fit_settings())
        except (UserError, OSError) as e:
            self.call_from_thread(self._pulled, screen, name, None, str(e))
        else:
            self.call_from_thread(self._pulled, screen, name, str(folder), None)

    def _pulled(self, screen, name: str, folder: str | None, error: str | None) -> None:
        if self.screen is screen:
            screen.dismiss(None)
        if error:
            self.notify(error, title=f"Could not pull {name}", severity="error", markup=False, timeout=10)
            return
        self.notify(f"Pulled {name}; loading it.", markup=False, timeout=3)
        self.load_model(folder)

    # ---- compare -----------------------------------------------------------------------------
    def action_compare(self) -> None:
        """The prompt in the box (else the last one) on several variants, saved as a compare session."""
        from workbench.tui.compare_view import CompareSetup

        prompt = self.query_one("#prompt", Input).value.strip() or (self.last.prompt if self.last else "")
        if not prompt:
            self.notify("Type a prompt first: compare runs it on several variants.", markup=False)
            return
        if not self.ready or self.job is not None or self.comparing:
            self.notify("Wait for the model (or Esc the response) first.", markup=False)
            return

        def chosen(todo: list | None) -> None:
            if todo:
                self.comparing, self.compare_stopped = True, False
                self._compare(prompt, todo)

        self.push_screen(CompareSetup(prompt, *self.loaded_from), chosen)

    @work(thread=True, group="compare", exit_on_error=False)
    def _compare(self, prompt: str, todo: list[dict]) -> None:
        import contextlib

        from workbench.sessions import Store
        from workbench.sessions.compare import run_variants
        from workbench.sessions.recorder import title_of

        store = self.sessions_ui.store
        own_store = store is None  # the app could not open the store: show the results, unsaved
        store = Store.open(":memory:") if own_store else store

        @contextlib.contextmanager
        def guard(job):
            self.compare_job = job
            if self.compare_stopped:
                job.cancel()
            yield
            self.compare_job = None

        def started(v):
            n = todo.index(v) + 1
            self.call_from_thread(self.status.show, f"comparing {n}/{len(todo)}: {printable(v['label'])}")

        error, session = None, None
        try:
            session_id = store.new_session(title_of(prompt), "compare")
            store.add_turn(session_id, "user", prompt)
            results = run_variants(self.engine, store, session_id, prompt, todo, self.sampling.top_p,
                                   self.sampling.max_tokens, bool(self.load_options), on_variant=started, guard=guard)
            session = store.session(session_id)
            error = next((r["error"] for r in results if "error" in r and "answer" not in r), None)
        except Exception as e:  # noqa: BLE001 - say what went wrong, keep the app
            error = str(e)
        finally:
            if own_store:
                store.close()
        self.call_from_thread(self._compared, session, error, {(v["model"], v["adapter"]) for v in todo})

    def _compared(self, session: dict | None, error: str | None, loaded: set) -> None:
        from workbench.tui.compare_view import CompareScreen

        self.comparing = False
        if loaded != {self.loaded_from}:  # the compare loaded other models: back to the chat's model
            self.load_model(*self.loaded_from)
        else:
            self.status.show("compare done")
        if error:
            self.notify(error, title="Compare", severity="error", markup=False, timeout=10)
        if session is not None and any(t["role"] == "assistant" for t in session["turns"]):
            self.push_screen(CompareScreen(session))

    # ---- training ----------------------------------------------------------------------------
    def action_train(self) -> None:
        from workbench.tui.train_screen import TrainLaunch

        self.push_screen(TrainLaunch(), self.start_training)

    def start_training(self, arguments: str | None) -> None:
        """A run folder is watched; anything else is arguments for `workbench train grpo`, run as its
        own process (output to RUN/train.log) so the app stays responsive."""
        from workbench.train.launch import launch_grpo
        from workbench.tui.train_screen import TrainScreen

        if not arguments:
            return
        if Path(arguments).expanduser().is_dir():
            self.push_screen(TrainScreen(Path(arguments).expanduser()))
            return
        try:
            self.training = launch_grpo(arguments)
        except (OSError, ValueError) as e:
            self.notify(str(e), title="Could not start training", severity="error", markup=False, timeout=10)
            return
        self.push_screen(TrainScreen(self.training.run, self.training.process, self.training.steps))

    # ---- evals -------------------------------------------------------------------------------
    def action_evals(self) -> None:
        from workbench.tui.evals_screen import EvalsScreen

        self.push_screen(EvalsScreen(self.engine.info))

    def on_eval_progress(self, message) -> None:
        from workbench.tui.evals_screen import EvalsScreen

        self.eval_run.take(message)
        if isinstance(self.screen, EvalsScreen):
            self.screen.progress()

    def action_settings(self) -> None:
        from workbench.tui.screens import SettingsScreen

        info = self.engine.info
        defaults = Sampling.from_dict(info.profile) if info else Sampling()

        def saved(settings: tuple[Sampling, Decoding] | None) -> None:
            if settings is not None:
                self.sampling, self.decoding = settings
                self.status.set_context(self.decoding.context)
                self.notify("Settings saved.", markup=False, timeout=2)

        decoding_defaults = Decoding.from_dict(info.profile) if info else Decoding()
        if info and not decoding_defaults.context:  # the profile's, else the model's own
            decoding_defaults = replace(decoding_defaults, context=info.context or None)
        self.push_screen(SettingsScreen(self.sampling, defaults, self.decoding, decoding_defaults), saved)

    @on(Markdown.LinkClicked)
    def link_clicked(self, event: Markdown.LinkClicked) -> None:
        # Links in model output are not opened (untrusted); the address is shown instead.
        self.notify(printable(event.href), title="Link (not opened)", markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for title, help_text, action in self.COMMANDS_LIST:
            yield SystemCommand(title, help_text, lambda action=action: self.run_action(action))

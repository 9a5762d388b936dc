"""Sessions in the app: every response saved as it streams, a sidebar to search and reopen them.

`SessionsUI.install(app)` opens the store and mounts the sessions sidebar and the inspector panel
(both hidden until toggled) beside the panes. The app calls `install` on mount, `record(job, request)`
for each response (the job it then reads records every event, `Recorder.follow`), and `action(name)`
from its keys.
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual import on
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, OptionList
from textual.widgets.option_list import Option

from workbench.engine.events import ChatRequest, Message, Stats
from workbench.errors import UserError
from workbench.tui.inspector import InspectorPanel
from workbench.terminal import printable
from workbench.tui.messages import Response


class SessionsPanel(Vertical):
    """Search box and the sessions, newest first; Enter on one reopens it."""

    DEFAULT_CSS = """
    SessionsPanel { width: 36; height: 1fr; display: none; border: round $secondary 60%; }
    SessionsPanel.open { display: block; }
    SessionsPanel Input { height: 3; }
    SessionsPanel OptionList { height: 1fr; border: none; }
    SessionsPanel Checkbox { height: 3; border: none; }
    """

    def __init__(self, ui: "SessionsUI") -> None:
        super().__init__(id="sessions")
        self.ui = ui
        self.border_title = "Sessions"

    def compose(self):
        yield Input(placeholder="search thinking and answers", id="session-search")
        yield OptionList(id="session-list")
        yield Checkbox("stop on repetition loops", id="stop-on-loop")

    @on(Checkbox.Changed, "#stop-on-loop")
    def stop_on_loop_changed(self, event: Checkbox.Changed) -> None:
        self.ui.stop_on_loop = event.value

    def refresh_list(self) -> None:
        store = self.ui.store
        options = self.query_one("#session-list", OptionList)
        options.clear_options()
        if store is None:
            return
        text = self.query_one("#session-search", Input).value.strip()
        if text:
            seen, rows = set(), []
            for hit in store.search(text, 200):
                if hit["session"] not in seen:
                    seen.add(hit["session"])
                    rows.append(Option(Text(f"{hit['session']:>4} {printable(hit['title'])[:28]}\n     "
                                            f"{hit['in']}: {printable(hit['snippet'])[:26]}"), id=str(hit["session"])))
        else:
            rows = [Option(Text(f"{r['id']:>4} {printable(r['title'])[:28]}\n     {r['status'] or '-'} · "
                                f"{printable(r['model'] or '-')[:18]}"), id=str(r["id"])) for r in store.list_sessions(200)]
        options.add_options(rows)

    @on(Input.Changed, "#session-search")
    def searched(self) -> None:
        self.refresh_list()

    @on(OptionList.OptionSelected, "#session-list")
    async def picked(self, event: OptionList.OptionSelected) -> None:
        await self.ui.reopen(int(event.option.id))


class SessionsUI:
    def __init__(self, app) -> None:
        self.app = app
        self.store = None
        self.session_id: int | None = None  # the session the chat writes into
        self.recorder = None  # of the response being generated, or the last one
        self.stop_on_loop = False  # ask the engine to stop a response stuck in a loop (sidebar checkbox)
        self.sidebar = SessionsPanel(self)
        self.inspector = InspectorPanel()

    @classmethod
    def install(cls, app) -> "SessionsUI":
        from workbench.inspect.tokens import o200k
        from workbench.sessions import Store

        ui = cls(app)
        try:
            ui.store = Store.open(notice=lambda m: app.notify(m, title="Session store", severity="warning",
                                                              markup=False, timeout=15))
        except UserError as e:  # keep working, unsaved, and say so
            app.notify(f"Sessions are not saved: {e}", severity="error", markup=False, timeout=15)
        main = app.query_one("#main")
        main.mount(ui.sidebar, before=app.query_one("#panes"))
        main.mount(ui.inspector)
        # Load tiktoken's table (~1 s of Python) in the background, after start-up has settled and
        # not while a response streams (it would take CPU from generation).
        def load_o200k() -> None:
            if app.job is not None:
                app.set_timer(3.0, load_o200k)
            else:
                threading.Thread(target=o200k, daemon=True).start()

        app.set_timer(3.0, load_o200k)
        return ui

    # ---- hooks the app calls ---------------------------------------------------------------------
    def record(self, job, request, prompt_turn: int | None = None, parent_id: int | None = None,
               thinking_prefix: str = ""):
        """The job to read instead of `job`: its events are saved as they stream. `prompt_turn`: the
        stored prompt it answers again (a branch beside an earlier response); `parent_id`: the turn a new
        prompt follows (after a fork); `thinking_prefix`: the thinking it continues."""
        if self.store is None:
            return job
        from workbench.sessions.recorder import Recorder, title_of

        prompt = request.messages[-1].content
        if prompt_turn is None:
            if self.session_id is None or not self.app.history:  # a new chat is a new session
                self.session_id = self.store.new_session(title_of(prompt), "chat")
            prompt_turn = self.store.add_turn(self.session_id, "user", prompt,
                                              **({"parent_id": parent_id} if parent_id is not None else {}))
            response_parent = None  # the row before it
        else:
            response_parent = prompt_turn
        self.recorder = Recorder(self.store, self.session_id, prompt, self.app.engine.info, request.sampling,
                                 on_saved=lambda: self.inspector.post_message(InspectorPanel.Saved()),
                                 parent_id=response_parent, thinking_prefix=thinking_prefix)
        self.recorder.prompt_turn = prompt_turn
        self.inspector.watch(self.recorder, self)
        return self.recorder.follow(job)

    def finished(self, recorder) -> None:
        """The inspector saw `recorder` finish: show the stored inspection, refresh the list."""
        turn = next((t for t in self.store.session(recorder.session_id)["turns"] if t["id"] == recorder.turn_id), None)
        if turn is not None:
            self.inspector.show(turn.get("inspection"), turn["thinking"], turn["content"])
        if self.sidebar.has_class("open"):
            self.sidebar.refresh_list()

    def action(self, name: str) -> None:
        if name == "sessions":
            self.sidebar.toggle_class("open")
            if self.sidebar.has_class("open"):
                self.sidebar.refresh_list()
                self.sidebar.query_one("#session-search").focus()
        elif name == "inspector":
            self.inspector.set_class_open(not self.inspector.has_class("open"))
        elif name in ("next_marker", "previous_marker"):
            self.inspector.jump_marker(self.app.thinking, +1 if name == "next_marker" else -1)

    # ---- reopening -------------------------------------------------------------------------------
    async def reopen(self, session_id: int) -> None:
        """Show a stored session in the panes and continue the chat from it."""
        from workbench.tui.panes import TurnView, Transcript

        app = self.app
        if app.job is not None:
            app.notify("Still generating: Esc stops it first.", markup=False)
            return
        session = self.store.session(session_id)
        if session["kind"] == "compare":  # variants side by side, not a chat to continue
            from workbench.tui.compare_view import CompareScreen

            await app.push_screen(CompareScreen(session))
            return
        from workbench.sessions.branches import branch

        await app.action_new_chat()
        transcript = app.query_one(Transcript)
        history, responses, prompt, prompt_turn, last = [], [], None, None, None
        turns = branch(session["turns"], session["turns"][-1]["id"]) if session["turns"] else []  # the latest branch
        for t in turns:
            if t["role"] == "user":
                prompt, prompt_turn = t["content"], t["id"]
                continue
            if t["role"] != "assistant":
                continue
            view = TurnView((prompt or "") + (f"  [{t['label']}]" if t.get("label") else ""), app.raw_mode)
            await transcript.mount(view)
            await view.write(t["content"])
            stats = Stats.from_dict(t["stats"]) if t.get("stats") and "thinking_tokens" in t["stats"] else None
            note = None if t["status"] in ("complete", "stopped") else f"{t['status']} response, as it was saved"
            await view.finish(t["thinking"], stats, note)
            history += [Message("user", prompt or ""), Message("assistant", t["content"], t["thinking"])]
            responses.append(Response(prompt or "", t["thinking"], t["content"], stats, None, None,
                                      ChatRequest(tuple(history[:-1])), prompt_turn, t["id"]))
            last = t
        app.history[:] = history
        app.branch[:] = responses
        self.session_id = session_id
        app.thinking.set_text(last["thinking"] if last else "")
        self.inspector.show(last.get("inspection") if last else None, last["thinking"] if last else "",
                            last["content"] if last else "")
        transcript.scroll_end(animate=False)
        app.status.show(f"session {session_id}: {printable(session['title'])[:60]}")
        app.query_one("#prompt").focus()

"""Answering a saved prompt again from an (edited) thinking: `workbench run --continue SESSION:TURN
--thinking-file F`, and the app's edit-and-continue. The new response is a branch beside the old one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.engine.events import Message
from workbench.errors import UserError
from workbench.sessions.branches import branch, messages_of, parents


@dataclass(frozen=True)
class Continuation:
    session_id: int
    parent_id: int  # the prompt the response answers: the new response's parent
    messages: tuple[Message, ...]  # the conversation up to and including that prompt
    thinking: str  # the thinking to continue from


def parse_ref(ref: str) -> tuple[str, int]:
    session, sep, turn = ref.rpartition(":")
    if not sep or not session or not turn.isdigit():
        raise UserError(f"--continue wants SESSION:TURN (e.g. 12:34, or last:34; turn ids from "
                        f"`workbench sessions show`), not {ref!r}")
    return session, int(turn)


def continuation_of(session: dict, turn_id: int, thinking: str | None = None) -> Continuation:
    """Continue response `turn_id` of `session` from `thinking` (default: its own)."""
    turns = session["turns"]
    path = branch(turns, turn_id)
    response = path[-1]
    if response["role"] != "assistant":
        raise UserError(f"turn {turn_id} of session {session['id']} is a {response['role']} turn, "
                        f"not a response: continue a response")
    parent = parents(turns)[turn_id]
    if parent is None:
        raise UserError(f"response {turn_id} of session {session['id']} answers no prompt")
    return Continuation(session["id"], parent, messages_of(path[:-1]),
                        response.get("thinking") or "" if thinking is None else thinking)


def continuation(ref: str, thinking_file: str | None = None, store=None) -> Continuation:
    from workbench.sessions.store import Store

    session_ref, turn_id = parse_ref(ref)
    thinking = None
    if thinking_file is not None:
        try:
            thinking = Path(thinking_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{thinking_file}: cannot read the thinking ({getattr(e, 'strerror', None) or e})") from None
    if store is not None:
        return continuation_of(store.session(session_ref), turn_id, thinking)
    with Store.open() as opened:
        return continuation_of(opened.session(session_ref), turn_id, thinking)

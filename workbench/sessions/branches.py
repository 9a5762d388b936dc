"""Branches of a session: every turn follows a parent (the `parent_id` column, NULL meaning the turn
stored before it), so a session is a tree; a fork is a turn whose parent is not the turn before it
(another response to the same prompt, an edited thinking continued, a new question after an older answer).
"""

from __future__ import annotations

from workbench.engine.events import Message
from workbench.errors import UserError


def parents(turns: list[dict]) -> dict[int, int | None]:
    """turn id -> the id of the turn it follows (None for the first)."""
    out: dict[int, int | None] = {}
    previous = None
    for t in turns:
        out[t["id"]] = t.get("parent_id") if t.get("parent_id") is not None else previous
        previous = t["id"]
    return out


def is_fork(turns: list[dict], index: int) -> bool:
    t = turns[index]
    return t.get("parent_id") is not None and (index == 0 or t["parent_id"] != turns[index - 1]["id"])


def branch(turns: list[dict], leaf_id: int) -> list[dict]:
    """The turns from the first to `leaf_id`, following parents."""
    by_id, up = {t["id"]: t for t in turns}, parents(turns)
    if leaf_id not in by_id:
        raise UserError(f"no turn {leaf_id} in this session (its turns: {', '.join(str(i) for i in by_id)})")
    path, seen, at = [], set(), leaf_id
    while at is not None and at in by_id and at not in seen:  # `seen`: a damaged store cannot loop forever
        seen.add(at)
        path.append(by_id[at])
        at = up[at]
    return path[::-1]


def messages_of(turns: list[dict]) -> tuple[Message, ...]:
    """A branch as chat messages (assistant turns keep their thinking; prompts drop it by default)."""
    return tuple(Message(t["role"], t["content"], t.get("thinking") or None) for t in turns)


def depth(turns: list[dict]) -> dict[int, int]:
    """turn id -> how many forks lie on the way to it (for indenting a tree)."""
    out: dict[int, int] = {}
    up = parents(turns)
    for i, t in enumerate(turns):
        parent = up[t["id"]]
        out[t["id"]] = out.get(parent, 0) + (1 if is_fork(turns, i) else 0) if parent is not None else 0
    return out


def only_branch(session: dict, leaf_id: int) -> dict:
    """The session with only the turns on the way to `leaf_id`."""
    return dict(session, turns=branch(session["turns"], leaf_id))


def fork_note(turns: list[dict], index: int) -> str:
    """", or " · branch from turn N" for a turn that does not follow the one before it."""
    return f" · branch from turn {turns[index]['parent_id']}" if is_fork(turns, index) else ""

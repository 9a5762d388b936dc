"""Sessions out to Markdown, JSONL and HTML, and JSONL back in.

JSONL follows the chat-message convention: one session per line, `{"messages": [...]}`, with an
assistant's thinking in `reasoning_content` (DeepSeek's API field) and workbench's own numbers
under `"workbench"`. A message that starts a branch (a fork) names the message it follows by its
index in the list: `"workbench": {"parent": 1}`; the others follow the message before them. Import also takes files of bare message lines (`{"role": ..., "content": ...}`),
one conversation per file. Model output is untrusted: HTML escapes everything it shows.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path

from workbench import jsonl
from workbench.errors import UserError
from workbench.sessions import shapes
from workbench.sessions.branches import fork_note, is_fork
from workbench.sessions.shapes import COLUMNS, clean
from workbench.sessions.store import LATEST_TIME, problem, valid_time
from workbench.terminal import escaped_json, printable

RESPONSE_FIELDS = ("status", "label", "model", "model_hash", "adapter", "adapter_hash", "sampling", "seed",
                   "stats", "inspection")
ROLES = ("system", "user", "assistant")


# ---- JSONL --------------------------------------------------------------------------------------

def to_jsonl_record(session: dict) -> dict:
    messages = []
    turns = session["turns"]
    index = {t["id"]: i for i, t in enumerate(turns)}
    for i, t in enumerate(turns):
        m = {"role": t["role"], "content": t["content"]}
        if t["role"] == "assistant":
            m["reasoning_content"] = t["thinking"]
            m["workbench"] = {k: t[k] for k in RESPONSE_FIELDS if t.get(k) is not None}
        if is_fork(turns, i) and t["parent_id"] in index:
            m.setdefault("workbench", {})["parent"] = index[t["parent_id"]]
        messages.append(m)
    return {"title": session["title"], "kind": session["kind"], "created": session["created"], "messages": messages}


def export_jsonl(session: dict) -> str:
    return escaped_json(json.dumps(to_jsonl_record(session), ensure_ascii=False)) + "\n"


def read_jsonl(path: Path) -> list[dict]:
    """Sessions (as JSONL records) in a file, checked whole: a bad line is a UserError naming it."""
    records, loose = [], []
    for n, item in jsonl.read_jsonl(path, allow_nan=False):
        where = f"{path}:{n}"
        if isinstance(item, dict) and isinstance(item.get("messages"), list):
            for i, m in enumerate(item["messages"]):
                _check_message(m, f"{where}: message {i + 1}")
                parent = (m.get("workbench") or {}).get("parent")
                if parent is not None and (type(parent) is not int or not 0 <= parent < i):
                    raise UserError(f"{where}: message {i + 1}: \"parent\" must be the index of an earlier "
                                    f"message (0 to {i - 1})")
            if item.get("title") is not None and not isinstance(item["title"], str):
                raise UserError(f"{where}: \"title\" must be a string")
            if item.get("created") is not None and not valid_time(item["created"]):
                raise UserError(f"{where}: \"created\" must be seconds since 1970 (0 to {LATEST_TIME:.0f}), "
                                f"not {str(item['created'])[:40]}")
            records.append(item)
        elif isinstance(item, dict) and "role" in item:
            _check_message(item, where)
            loose.append(item)
        else:
            raise UserError(f"{where}: expected {{\"messages\": [...]}} or a chat message with a \"role\"")
    if loose:
        records.append({"messages": loose})
    if not records:
        raise UserError(f"{path}: no sessions in the file")
    return records


def _check_message(m, where: str) -> None:
    if not isinstance(m, dict) or m.get("role") not in ROLES:
        raise UserError(f"{where}: a message needs a \"role\" of {', '.join(ROLES)}")
    for key in ("content", "reasoning_content"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise UserError(f"{where}: \"{key}\" must be a string")
    if m.get("workbench") is not None and not isinstance(m["workbench"], dict):
        raise UserError(f"{where}: \"workbench\" must be an object")


def import_jsonl(store, path: Path) -> list[int]:
    """Add every session in the file to the store; returns the new session ids.
    The whole file is checked first, then written in one transaction: a bad line imports nothing."""
    records = read_jsonl(path)
    ids = []
    try:
        with store.transaction():
            for r in records:
                messages = r["messages"]
                first_user = next((m.get("content") or "" for m in messages if m["role"] == "user"), "")
                session_id = store.new_session(_text(r.get("title") or first_user[:78] or Path(path).stem), "import",
                                               r.get("created"))
                turn_ids: list[int] = []
                for m in messages:
                    extra = {}
                    parent = (m.get("workbench") or {}).get("parent")
                    if m["role"] == "assistant":
                        meta = m.get("workbench") or {}
                        extra = {k: meta[k] for k in RESPONSE_FIELDS if k in meta}
                        if extra.get("status") not in ("complete", "stopped", "interrupted"):
                            extra["status"] = "complete"
                    extra = _clean(extra)
                    if parent is not None:
                        extra["parent_id"] = turn_ids[parent]
                    turn_ids.append(store.add_turn(session_id, m["role"], _text(m.get("content")),
                                                   _text(m.get("reasoning_content")), **extra))
                ids.append(session_id)
    except sqlite3.Error as e:
        raise UserError(f"nothing imported from {path}: {problem(store.path, e, 'write to')}") from None
    return ids


def _text(s) -> str:
    """JSON may carry lone surrogates (\\ud800) that SQLite cannot store: replace them."""
    return shapes.text(s or "")


def _clean(extra: dict) -> dict:
    """Imported metadata is untrusted: keep only values of the right shape."""
    out = {}
    for k, v in extra.items():
        if k in COLUMNS:
            v = clean(k, v)
            ok = v is not None
        elif k == "seed":
            ok = isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63
        else:
            ok = isinstance(v, str)
        if ok:
            out[k] = _text(v) if isinstance(v, str) else v
    return out


# ---- Markdown -------------------------------------------------------------------------------------

def export_markdown(session: dict) -> str:
    """Model text is untrusted: escapes are shown (`printable`), and the thinking, plain text in a
    `<details>` fold, is HTML-escaped with any open code fence closed, so it cannot end the fold."""
    p = printable
    out = [f"# {p(session['title'])}", ""]
    turns = session["turns"]
    for i, t in enumerate(turns):
        if t["role"] != "assistant":
            out += [f"**{p(t['role'].capitalize())}:**{fork_note(turns, i)}", "", p(t["content"]), ""]
            continue
        who = p(t.get("model") or "assistant")
        if t.get("label"):
            who += f" ({p(t['label'])})"
        out += [f"**{who}** · {p(t.get('status') or 'complete')}{fork_note(turns, i)}", ""]
        if t["thinking"]:
            out += ["<details>", f"<summary>Thinking{_token_note(t)}</summary>", "", _folded(t["thinking"]), "",
                    "</details>", ""]
        out += [p(t["content"]), ""]
        summary = inspection_summary(t.get("inspection"))
        if t.get("stats") and "generation_tps" in t["stats"]:
            from workbench.engine.events import Stats

            out += [f"*{Stats.from_dict(t['stats']).summary()}*", ""]
        if summary:
            out += [f"*{p(summary)}*", ""]
    return "\n".join(out).rstrip() + "\n"


FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)


def _folded(thinking: str) -> str:
    """The thinking as Markdown that stays inside its fold: `<` and `&` as entities (a `</details>`
    or `<div>` is shown, not parsed), and a code fence left open is closed."""
    text = html.escape(printable(thinking), quote=False)
    opened = None
    for m in FENCE.finditer(text):
        fence = m.group(1)
        if opened is None:
            opened = fence
        elif fence[0] == opened[0] and len(fence) >= len(opened):
            opened = None
    return text if opened is None else f"{text.rstrip()}\n{opened}"


def _token_note(t: dict) -> str:
    n = (t.get("stats") or {}).get("thinking_tokens")
    return f" ({n:,} tokens)" if n else ""


def inspection_summary(ins: dict | None) -> str:
    """One line: markers, steps, token share, language, loops, consistency."""
    if not ins:
        return ""
    parts = []
    counts = ins.get("markers", {}).get("counts", {})
    marked = ", ".join(f"{k} {v}" for k, v in counts.items() if v)
    parts.append(f"markers: {marked or 'none'}")
    parts.append(f"{len(ins.get('steps', []))} steps")
    tokens = ins.get("tokens", {})
    if tokens.get("thinking_share") is not None:
        parts.append(f"thinking {tokens['thinking_share']:.0%} of tokens")
    if tokens.get("thinking_o200k") is not None:
        parts.append(f"o200k {tokens['thinking_o200k'] + tokens['answer_o200k']:,} tokens")
    lang = ins.get("language", {})
    if lang.get("flagged"):
        parts.append(f"LANGUAGE MIXING {lang['other_share']:.0%} ({', '.join(lang['other_scripts'])})")
    if ins.get("loops", {}).get("loop"):
        parts.append("REPETITION LOOP")
    c = ins.get("consistency", {})
    if c.get("consistent") is not None:
        parts.append("answer matches thinking" if c["consistent"] else
                     f"ANSWER DIFFERS from thinking ({c['thinking_answer']!r} vs {c['final_answer']!r})")
    return " · ".join(parts)


# ---- HTML -----------------------------------------------------------------------------------------

STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em}
.turn{margin:1.2em 0}.role{font-weight:600}.thinking{color:#555;white-space:pre-wrap;border-left:3px solid #ccc;padding-left:.8em}
.answer{white-space:pre-wrap}mark{background:#fde68a}.meta{color:#777;font-size:13px}"""


def export_html(session: dict) -> str:
    def e(text) -> str:  # untrusted text: escapes shown, then HTML-escaped
        return html.escape(printable(str(text)))

    body = [f"<h1>{e(session['title'])}</h1>"]
    turns = session["turns"]
    for i, t in enumerate(turns):
        if t["role"] != "assistant":
            body.append(f'<div class="turn"><div class="role">{e(t["role"].capitalize())}{e(fork_note(turns, i))}</div>'
                        f'<div class="answer">{e(t["content"])}</div></div>')
            continue
        who = e(t.get("model") or "assistant") + (f" ({e(t['label'])})" if t.get("label") else "")
        markers = ((t.get("inspection") or {}).get("markers") or {}).get("positions") or []
        body.append(f'<div class="turn"><div class="role">{who} · {e(t.get("status") or "complete")}'
                    f'{e(fork_note(turns, i))}</div>')
        if t["thinking"]:
            body.append(f'<details><summary>Thinking{e(_token_note(t))}</summary>'
                        f'<div class="thinking">{highlight(t["thinking"], markers)}</div></details>')
        body.append(f'<div class="answer">{e(t["content"])}</div>')
        summary = inspection_summary(t.get("inspection"))
        if summary:
            body.append(f'<div class="meta">{e(summary)}</div>')
        body.append("</div>")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{e(session["title"])}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def highlight(text: str, markers) -> str:
    """Escaped text with the reflection markers wrapped in <mark>."""
    out, at = [], 0
    for m in markers:
        if not (isinstance(m, list) and len(m) == 3 and isinstance(m[0], int) and isinstance(m[1], int)):
            continue
        start, end, kind = m
        if at <= start < end <= len(text):
            out += [_escaped(text[at:start]), f'<mark title="{_escaped(str(kind))}">', _escaped(text[start:end]),
                    "</mark>"]
            at = end
    out.append(_escaped(text[at:]))
    return "".join(out)


def _escaped(text: str) -> str:
    return html.escape(printable(text))


EXPORTERS = {"md": export_markdown, "jsonl": export_jsonl, "html": export_html}

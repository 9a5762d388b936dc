"""`workbench sessions [list | show ID | export ID | search TEXT | import FILE]`: the saved sessions."""

from __future__ import annotations

import json
import sys

from workbench.terminal import escaped_json, printable  # titles, model names and text are untrusted


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    p = sub.add_parser("list", help="newest sessions first")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true", help="a JSON array")
    p = sub.add_parser("show", help="one session: thinking, answers, stats, inspection")
    p.add_argument("id", help="a session id, or 'last' for the newest")
    p.add_argument("--json", action="store_true", help="the session as JSON")
    p.add_argument("--branch", type=int, default=None, metavar="TURN",
                   help="only the turns on the way to TURN (default: every branch, forks marked)")
    p = sub.add_parser("export", help="write a session as Markdown, JSONL or HTML")
    p.add_argument("id", help="a session id, or 'last'")
    p.add_argument("--branch", type=int, default=None, metavar="TURN", help="only the turns on the way to TURN")
    p.add_argument("--format", choices=("md", "jsonl", "html"), default="md")
    p.add_argument("--output", "-o", default=None, help="a file (default: stdout)")
    p = sub.add_parser("search", help="sessions whose thinking, answers or titles contain TEXT")
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("import", help="add sessions from a JSONL file (chat messages, reasoning_content)")
    p.add_argument("file")


def main(args) -> int:
    from workbench.sessions import Store

    action = args.action or "list"
    with Store.open(write=action == "import") as store:  # reading works on a read-only volume
        if action == "list":
            rows = store.list_sessions(getattr(args, "limit", 30))
            if getattr(args, "json", False):
                print(escaped_json(json.dumps(rows, indent=1, ensure_ascii=False)))
            elif not rows:
                print(f"no sessions yet in {store.path}")
            for r in rows if not getattr(args, "json", False) else ():
                print(f"{r['id']:>5}  {_when(r['updated'])}  {r['status'] or '-':<11} {printable(r['model'] or '-')[:20]:<20}  "
                      f"{printable(r['title'])}")
        elif action == "show":
            session = with_inspection(chosen_branch(store.session(args.id), args.branch), store)
            if args.json:
                print(escaped_json(json.dumps(session, indent=1, ensure_ascii=False)))
            else:
                print_session(session)
        elif action == "export":
            from workbench.sessions.export import EXPORTERS

            text = EXPORTERS[args.format](with_inspection(chosen_branch(store.session(args.id), args.branch), store))
            if args.output:
                with open(args.output, "w", encoding="utf-8") as f:
                    f.write(text)
            else:
                sys.stdout.write(text)
        elif action == "search":
            hits = store.search(args.text, args.limit)
            if args.json:
                print(escaped_json(json.dumps(hits, indent=1, ensure_ascii=False)))
            for h in hits if not args.json else ():
                print(f"{h['session']:>5}  {h['in']:<9} {printable(h['title'])[:40]:<40}  …{printable(h['snippet'])}…")
        elif action == "import":
            from workbench.sessions.export import import_jsonl

            ids = import_jsonl(store, args.file)
            print(f"imported {len(ids)} session{'s' * (len(ids) != 1)}: {', '.join(map(str, ids))}")
    return 0


def chosen_branch(session: dict, leaf: int | None) -> dict:
    from workbench.sessions.branches import only_branch

    return session if leaf is None else only_branch(session, leaf)


def with_inspection(session: dict, store=None) -> dict:
    """Responses saved without an inspection (interrupted mid-stream) get one computed from their text, and
    inspections saved without o200k_base counts get those; kept in `store` (when given) unless the response
    is still streaming: the next show reads them."""
    import sqlite3

    from workbench.inspect.tokens import with_o200k

    prompt = ""
    for t in session["turns"]:
        if t["role"] == "user":
            prompt = t["content"]
        elif t["role"] != "assistant" or not (t["thinking"] or t["content"]):
            continue
        elif not t.get("inspection"):
            import workbench.inspect

            t["inspection"] = workbench.inspect.inspect_text(prompt, t["thinking"], t["content"])
        elif not with_o200k(t["inspection"].get("tokens") or {}, t["thinking"], t["content"]):
            continue
        if store is not None and t.get("status") != "streaming" and t.get("id") is not None:
            try:
                store.set_inspection(t["id"], t["inspection"])
            except sqlite3.Error:
                pass  # a read-only or locked store: shown, computed again next time
    return session


def print_session(session: dict, out=None) -> None:
    out = out or sys.stdout
    from workbench.engine.events import Stats
    from workbench.sessions.export import inspection_summary

    from workbench.sessions.branches import depth, fork_note

    out.write(f"session {session['id']}: {printable(session['title'])}  ({session['kind']}, {_when(session['created'])})\n")
    turns = session["turns"]
    indent = depth(turns)
    for i, t in enumerate(turns):
        head = f"\n{'  ' * indent[t['id']]}[turn {t['id']}{fork_note(turns, i)}: "
        if t["role"] != "assistant":
            out.write(f"{head}{t['role']}]\n{printable(t['content'])}\n")
            continue
        label = f" {t['label']}" if t.get("label") else ""
        weights = f" · weights {printable(str(t['model_hash']))[:12]}" if t.get("model_hash") else ""  # a card's model_sha256
        out.write(f"{head}assistant: {printable(t.get('model') or '?')}{printable(label)}{weights} · {t.get('status')}]\n")
        if t["thinking"]:
            out.write(f"Thinking\n{printable(t['thinking'])}\n\n")
        out.write(f"Answer\n{printable(t['content'])}\n")
        stats = t.get("stats") or {}
        if "generation_tps" in stats:
            out.write(f"[{Stats.from_dict(stats).summary()}]\n")
        summary = inspection_summary(t.get("inspection"))
        if summary:
            out.write(f"[{printable(summary)}]\n")


def _when(t) -> str:
    import time

    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
    except (TypeError, ValueError, OverflowError, OSError):  # a time no date can show (an old import)
        return "????-??-?? ??:??"

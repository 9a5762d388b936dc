"""`workbench compare "PROMPT" --model A --model B`: one prompt, several variants, side by side.

Variants are every combination of the given models, adapters and temperatures, each run
`--samples` times (seeds SEED, SEED+1, ...). Each response is streamed through the recorder, so
it gets the same inspection as any response and is saved as one "compare" session (unless
--no-save). `--gold` checks each answer with the math verifier.
"""

from __future__ import annotations

import json
import sys

from workbench.commands.arguments import add_engine_arguments, add_save_arguments
from workbench.terminal import printable


def add_arguments(parser) -> None:
    parser.add_argument("prompt", help="the prompt, or - to read it from stdin")
    add_engine_arguments(parser)
    parser.add_argument("--model", "-m", action="append", help="a model (repeat to compare models)")
    parser.add_argument("--adapter", action="append",
                        help="a LoRA adapter folder, or 'none' for the base model (repeat to compare)")
    parser.add_argument("--temp", type=float, action="append", help="a temperature (repeat to compare)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling (profile default)")
    parser.add_argument("--max-tokens", type=int, default=None, help="generation limit (profile default)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first sample")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow models that need custom code")
    parser.add_argument("--samples", type=int, default=1, help="responses per variant (seeds SEED, SEED+1, ...)")
    parser.add_argument("--gold", default=None, help="the expected answer, checked with the math verifier")
    parser.add_argument("--json", action="store_true", help="all results as one JSON object")
    add_save_arguments(parser)


def main(args) -> int:
    from workbench.engine.choose import open_engine
    from workbench.errors import UserError
    from workbench.sessions import Store
    from workbench.sessions.compare import run_variants, variants
    from workbench.sessions.recorder import title_of

    from workbench.commands.run import stop_on_ctrl_c

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    todo = variants(args.model, args.adapter, args.temp, args.samples, args.seed)
    if len(todo) < 2:
        raise UserError("compare needs two or more variants: several --model, --adapter or --temp, or --samples N")
    unsaved = False
    try:
        store = Store.open(":memory:" if args.no_save else None)
    except UserError as e:  # an unusable store costs the saving, not the comparison
        print(f"workbench: warning: {e}; this comparison is not saved (--no-save skips saving)", file=sys.stderr)
        store, unsaved = Store.open(":memory:"), True
    session_id = store.new_session(title_of(prompt), "compare")
    store.add_turn(session_id, "user", prompt)
    engine = open_engine(args.endpoint)
    try:
        results = run_variants(engine, store, session_id, prompt, todo, args.top_p, args.max_tokens,
                               args.trust_remote_code, args.stop_on_loop, args.gold, guard=stop_on_ctrl_c,
                               on_variant=lambda v: print(f"workbench: {v['label']} ...", file=sys.stderr, flush=True))
    finally:
        engine.close()
        store.close()
    report = {"prompt": prompt, "gold": args.gold, "session": None if args.no_save or unsaved else session_id,
              "results": results}
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(report)
    return 1 if unsaved or any("error" in r for r in results) else 0


ROWS = [
    ("status", lambda r: r.get("status") or "error"),
    ("thinking tokens", lambda r: r["stats"]["thinking_tokens"]),
    ("answer tokens", lambda r: r["stats"]["answer_tokens"]),
    ("tok/s", lambda r: f"{r['stats']['generation_tps']:.1f}"),
    ("thinking share", lambda r: f"{r['inspection']['tokens']['thinking_share']:.0%}"),
    ("markers", lambda r: r["inspection"]["markers"]["total"]),
    ("steps", lambda r: len(r["inspection"]["steps"])),
    ("language mixing", lambda r: "FLAG" if r["inspection"]["language"]["flagged"] else "-"),
    ("loop", lambda r: "LOOP" if r["inspection"]["loops"]["loop"] else "-"),
    ("answer vs thinking", lambda r: {True: "same", False: "DIFFERS", None: "-"}[r["inspection"]["consistency"]["consistent"]]),
    ("gold", lambda r: ("right" if r["verdict"]["score"] >= 1 else "wrong") if "verdict" in r else "-"),
]


def print_report(report: dict, out=None) -> None:
    out = out or sys.stdout
    results = report["results"]
    for r in results:
        out.write(f"\n== {printable(r['label'])} ==\n")
        if "error" in r and "answer" not in r:
            out.write(f"error: {printable(r['error'])}\n")
            continue
        out.write(f"Thinking\n{printable(r['thinking'])}\n\nAnswer\n{printable(r['answer'])}\n")
    table = [["", *(printable(r["label"])[:24] for r in results)]]
    for name, cell in ROWS:
        row = [name]
        for r in results:
            try:
                row.append(str(cell(r)))
            except (KeyError, TypeError):
                row.append("-")
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out.write("\n")
    for row in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")
    if report["session"]:
        out.write(f"\nsaved as session {report['session']} (workbench sessions show {report['session']})\n")

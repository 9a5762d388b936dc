"""`workbench verify --verifier NAME FILE.jsonl`: score completions from any tool.

Each input line holds `completion` plus the example's fields (`answer` for math, `tests`/`test`
and `entry_point` for code, `numbers`/`target` for countdown, ...). Each output line is
{"score": ..., "reason": ...} in input order. A malformed line gets {"score": null, ...}, a
warning naming FILE:LINE on stderr, and exit status 1; the other lines are still scored.
With `--explain` each line also says how it was decided (the math verifier: the extracted answer, how
it was found, the parsed gold and answer, and the rule that decided).
"""

from __future__ import annotations

import json
import sys

BATCH = 64  # lines verified in parallel before their results are printed


def add_arguments(parser) -> None:
    parser.add_argument("file", help="JSONL file, or - for stdin")
    parser.add_argument("--verifier", "-v", required=True, help="math, format, format_partial, language, code, countdown")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per line (default: the verifier's)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 4)")
    parser.add_argument("--explain", action="store_true",
                        help="add how each verdict was reached: extracted answer, parsed forms, deciding rule")


def read_lines(path: str):
    """(line number, raw line) pairs; a missing or unreadable file is a UserError."""
    from workbench.errors import UserError

    if path == "-":
        yield from enumerate(sys.stdin, 1)
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from enumerate(f, 1)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None


def parse_line(line: str) -> tuple[str, dict] | str:
    """(completion, example) or the reason the line is malformed."""
    from workbench.jsonl import parse_line

    try:
        record = parse_line(line)
    except ValueError as e:
        return f"not JSON ({e})"
    if not isinstance(record, dict):
        return "not a JSON object"
    completion = record.pop("completion", None)
    if not isinstance(completion, str):
        return "no `completion` string"
    return completion, record


def main(args) -> int:
    from workbench.verify import VerifierPool
    from workbench.verify.registry import check_available

    check_available(args.verifier)
    name = "<stdin>" if args.file == "-" else args.file
    malformed = 0

    def flush(batch, pool) -> None:
        items = [(p[0], {**p[1], "explain": True} if args.explain else p[1]) for _, p in batch if not isinstance(p, str)]
        verdicts = iter(pool.map(args.verifier, items, args.timeout))
        for _, parsed in batch:
            if isinstance(parsed, str):
                out = {"score": None, "reason": f"malformed line: {parsed}"}
            else:
                v = next(verdicts)
                out = {"score": v.score, "reason": v.reason}
                if args.explain:
                    out.update(v.details or {"extracted": v.extracted})
            sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()

    with VerifierPool(args.workers) as pool:
        batch = []
        for number, line in read_lines(args.file):
            parsed = parse_line(line) if line.strip() else "blank line"  # still answered: output lines match input lines
            if isinstance(parsed, str) and line.strip():
                malformed += 1
                print(f"workbench: warning: {name}:{number}: {parsed.splitlines()[0][:200]}", file=sys.stderr)
            batch.append((number, parsed))
            if len(batch) >= BATCH:
                flush(batch, pool)
                batch = []
        flush(batch, pool)
    return 1 if malformed else 0

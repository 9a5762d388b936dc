"""Training prompts: a generated suite (`arithmetic`) or a JSONL file of {"prompt", "answer", ...} rows.

Examples are the dicts verifiers receive. The order is a seeded shuffle per epoch, so a data
position (an integer) is all a checkpoint needs to continue exactly where a run stopped.
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench.errors import UserError
from workbench.jsonl import parse_line

GENERATED = ("arithmetic",)


def load_examples(suite: str, size: int = 2000, seed: int = 0, split: str = "train") -> list[dict]:
    """`split` "train" or "eval" (held out: a different seed for generated suites, the last 10% of a file)."""
    if suite in GENERATED:
        from workbench.train.arithmetic import problem

        rng = random.Random(f"{suite}-{split}-{seed}")
        rows = [problem(rng) for _ in range(size)]
        if split == "train":  # no held-out problem may appear in training
            held = {(p["a"], p["op"], p["b"]) for p in load_examples(suite, size, seed, "eval")}
            rows = [p for p in rows if (p["a"], p["op"], p["b"]) not in held]
        return rows
    path = Path(suite)
    if not path.is_file():
        raise UserError(f"{suite}: no such suite (give a JSONL file of {{\"prompt\", \"answer\"}} rows or one of: {', '.join(GENERATED)})")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = parse_line(line)
        except ValueError as e:
            raise UserError(f"{path}:{n}: not JSON ({e})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UserError(f"{path}:{n}: a row needs a \"prompt\" string")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no examples")
    cut = max(1, len(rows) // 10) if len(rows) > 1 else 0
    return rows[len(rows) - cut:] if split == "eval" else rows[:len(rows) - cut] or rows


def batch_at(examples: list[dict], position: int, n: int, seed: int) -> list[dict]:
    """The n examples starting at `position` in the endless, per-epoch shuffled stream."""
    out = []
    for p in range(position, position + n):
        epoch, i = divmod(p, len(examples))
        order = list(range(len(examples)))
        random.Random(f"{seed}-{epoch}").shuffle(order)
        out.append(examples[order[i]])
    return out

"""`workbench models`: the models on this machine."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON list of models")


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def main(args) -> int:
    from workbench.models.local import list_local

    models = list_local()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=1))
        return 0
    if not models:
        print("no local models")
        return 0
    rows = [("", "NAME", "SIZE", "QUANT", "TYPE", "SOURCE", "PATH")]
    for m in models:
        rows.append(("*" if m.default else "", m.name, human_size(m.size_bytes), m.quantization or "full",
                     m.model_type, m.source, m.path))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("\n* default model")
    return 0

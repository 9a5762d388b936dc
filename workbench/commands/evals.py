"""`workbench evals [MODEL]`: list report cards; cards whose model files changed are marked stale."""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", default=None, help="a model name or folder (default: every local model)")
    parser.add_argument("--json", action="store_true", help="one JSON array of card summaries")


def main(args) -> int:
    from pathlib import Path

    from workbench.eval import card as cards
    from workbench.models.local import list_local, resolve_model

    folders = [resolve_model(args.model)] if args.model else [Path(m.path) for m in list_local()]
    rows = []
    for folder in folders:
        paths = cards.card_paths(folder)
        if not paths:
            continue
        files = cards.fingerprint(folder)
        for path in paths:
            card = cards.refresh_stale(path, files)
            if card is None:
                continue
            lo, hi = card.get("ci95") or (0, 0)
            rows.append({"model": folder.name, "suite": (card.get("suite") or {}).get("name"),
                         "accuracy": card.get("accuracy"), "ci95": [lo, hi], "n": card.get("n"),
                         "samples": card.get("samples"), "finished": card.get("finished"),
                         "stale": bool(card.get("stale")), "stale_reason": card.get("stale_reason"),
                         "adapter": card.get("adapter"), "file": str(path)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no report cards" + (f" for {args.model}" if args.model else "") + " (run `workbench eval`)")
        return 0
    for r in rows:
        status = f"  STALE: {r['stale_reason']}" if r["stale"] else ""
        print(f"{r['model']:<24} {r['suite'] or '?':<12} {r['accuracy'] * 100:5.1f}%  "
              f"[{r['ci95'][0] * 100:.1f}, {r['ci95'][1] * 100:.1f}]  n={r['n']:<5} {r['finished'] or ''}{status}")
        print(f"{'':<24} {r['file']}")
    return 0

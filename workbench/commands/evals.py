"""`workbench evals [MODEL]`: list report cards; cards whose model files changed are marked stale.

`workbench evals --diff BEFORE.json AFTER.json`: two cards on the same suite, problem by problem
(did GRPO beat SFT, or was it noise?).
`workbench evals --rescore CARD.json ...`: re-judge the stored completions with the current verifier.
`workbench evals --curve CARD.json ...`: budget sweeps' accuracy against thinking tokens (terminal + PNG).
"""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("model", nargs="?", default=None, help="a model name or folder (default: every local model)")
    parser.add_argument("--json", action="store_true", help="one JSON array of card summaries")
    parser.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="two report cards (.json) of the same suite: on how many problems each did "
                        "better, and the sign test's p-value")
    parser.add_argument("--curve", nargs="+", metavar="CARD",
                        help="budget-sweep report cards (.json, from `eval --budgets`) of one suite: accuracy against "
                        "thinking tokens in the terminal and as a PNG")
    parser.add_argument("--png", default=None, help="with --curve: where to save the PNG (default: beside the first card)")
    parser.add_argument("--rescore", nargs="+", metavar="CARD",
                        help="report cards (.json) to re-judge with the current verifier, rewritten in place "
                        "(nothing is generated again)")


def read_card(path: str) -> dict:
    from workbench.errors import UserError

    try:
        card = json.loads(open(path, encoding="utf-8").read())
    except OSError as e:
        raise UserError(f"cannot read report card {path}: {e.strerror}") from None
    except ValueError:
        raise UserError(f"{path} is not a report card (not JSON)") from None
    if not isinstance(card, dict) or not isinstance(card.get("items"), list):
        raise UserError(f"{path} is not a report card (no items)")
    for i, item in enumerate(card["items"]):
        samples = item.get("samples") if isinstance(item, dict) else None
        if not (isinstance(item, dict) and "id" in item and isinstance(samples, list)
                and all(isinstance(s, dict) and isinstance(s.get("correct"), bool) for s in samples)):
            raise UserError(f"{path} is not a report card (item {i + 1} has no id or verdicts)")
    return card


def diff(before_path: str, after_path: str, as_json: bool) -> int:
    from workbench.errors import UserError
    from workbench.eval.card import paired_difference

    before, after = read_card(before_path), read_card(after_path)
    names = [(c.get("suite") or {}).get("name") for c in (before, after)]
    if names[0] != names[1]:
        raise UserError(f"the cards are of different suites ({names[0]} and {names[1]})")
    d = paired_difference(before, after)
    if not d["problems"]:
        raise UserError("the cards have no problems in common")
    if as_json:
        print(json.dumps(d))
        return 0
    print(f"{names[0]}, {d['problems']} problems in both: {d['before']:.1%} -> {d['after']:.1%}; "
          f"better on {d['better']}, worse on {d['worse']} (sign test p = {d['p_value']:.3g})")
    return 0


def rescore(paths: list[str], as_json: bool) -> int:
    from workbench.eval.rescore import read, rescore_card
    from workbench.verify import VerifierPool

    for path in paths:
        read(path)  # every card readable before any is rewritten
    with VerifierPool(workers=2) as pool:
        for path in paths:
            r = rescore_card(path, pool)
            print(json.dumps(r) if as_json else f"{r['path']}: {(r['before'] or 0) * 100:.1f}% -> {r['after'] * 100:.1f}% "
                  f"({r['from']} -> {r['to']}, {r['changed']} verdicts changed)")
    return 0


def curve(paths: list[str], png: str | None, as_json: bool) -> int:
    import sys
    from pathlib import Path

    from workbench.eval.curve import read_curves, save_png, terminal_plot

    curves = read_curves(paths)
    png = save_png(curves, png or Path(paths[0]).with_suffix(".curve.png"))
    if as_json:
        print(json.dumps({"png": str(png), "curves": [{"name": c.name, "suite": c.suite, "points": [
            p.__dict__ for p in c.points]} for c in curves]}))
        return 0
    print(terminal_plot(curves, color=sys.stdout.isatty()))
    for c in curves:
        print(c.name)
        for p in c.points:
            print(f"  budget {p.label:>6}: {p.accuracy:6.1%} ({p.low:.1%} to {p.high:.1%}) at "
                  f"{p.thinking_tokens:,.0f} thinking tokens")
    print(f"curve: {png}")
    return 0


def older_judge(verifier: dict) -> str | None:
    """The current version of the card's verifier when the card was judged by an older one."""
    from workbench.errors import UserError
    from workbench.verify import verifier_version

    try:
        current = verifier_version(str(verifier.get("name")))
    except UserError:
        return None
    return current if verifier.get("version") not in (None, current) else None


def summary_row(model: str, card: dict, path) -> dict:
    lo, hi = card.get("ci95") or (0, 0)
    return {"model": model, "suite": (card.get("suite") or {}).get("name"), "accuracy": card.get("accuracy"),
            "ci95": [lo, hi], "n": card.get("n"), "samples": card.get("samples"), "finished": card.get("finished"),
            "stale": bool(card.get("stale")), "stale_reason": card.get("stale_reason"), "adapter": card.get("adapter"),
            "file": str(path), "model_sha256": card.get("model_sha256"), "verifier": (card.get("verifier") or {}).get("version"),
            "older_judge": older_judge(card.get("verifier") or {})}


def main(args) -> int:
    from pathlib import Path

    if args.diff:
        return diff(*args.diff, args.json)
    if args.rescore:
        return rescore(args.rescore, args.json)
    if args.curve:
        return curve(args.curve, args.png, args.json)

    from workbench.terminal import printable
    from workbench.eval import card as cards
    from workbench.models.local import list_local, resolve_model

    folders = [resolve_model(args.model)] if args.model else [Path(m.path) for m in list_local()]
    rows = []
    for folder in folders:
        for path, card in cards.refresh_cards(folder):
            rows.append(summary_row(folder.name, card, path))
    if not args.model:  # models served elsewhere: nothing here to re-hash, so never stale
        for path in cards.served_card_paths():
            card = cards.read_card(path)
            served = card.get("served") if card else None
            if not isinstance(served, dict):
                continue
            rows.append(summary_row(f"{served.get('model')} @ {served.get('endpoint')}", card, path))
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("no report cards" + (f" for {args.model}" if args.model else "") + " (run `workbench eval`)")
        return 0
    for r in rows:
        status = f"  STALE: {r['stale_reason']}" if r["stale"] else ""
        if r["older_judge"]:
            status += f"  judged by {r['verifier']} (now {r['older_judge']}: evals --rescore re-judges it)"
        print(f"{printable(r['model']):<24} {printable(r['suite'] or '?'):<12} {r['accuracy'] * 100:5.1f}%  "
              f"[{r['ci95'][0] * 100:.1f}, {r['ci95'][1] * 100:.1f}]  n={r['n']:<5} {r['finished'] or ''}{status}")
        weights = f"  weights {printable(str(r['model_sha256']))[:12]}" if r["model_sha256"] else ""  # as sessions show
        print(f"{'':<24} {r['file']}{weights}")
    return 0

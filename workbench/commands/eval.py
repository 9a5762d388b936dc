"""`workbench eval --model M --suite S`: run a task suite, verify every answer, write a report card.

Progress goes to stderr; the card (JSON + Markdown) goes to the model folder's `evals/`
(or `$WORKBENCH_HOME/evals/<model>/` when that folder is read-only; for `--endpoint URL`, a model
served elsewhere, `$WORKBENCH_HOME/evals/served/<host_port>-<model>/`). `--json` prints the card.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser) -> None:
    from workbench.commands.arguments import (
        add_budget_arguments, add_decoding_arguments, add_engine_arguments, add_model_arguments,
    )

    add_engine_arguments(parser)
    add_model_arguments(parser)
    add_decoding_arguments(parser)
    parser.add_argument("--suite", "-s", required=True,
                        help="gsm8k, math500, aime24, aime25, amc23, humaneval, arithmetic, countdown, "
                        "or a suite spec (.toml/.json) or JSONL file")
    parser.add_argument("--limit", "-n", type=int, default=None, help="first N items (generated suites: their size)")
    parser.add_argument("--samples", "-k", type=int, default=1, help="samples per item; pass@1 is averaged over them")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (and the generated suites' seed)")
    parser.add_argument("--temp", type=float, default=None, help="temperature (default: the model profile's)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling (default: the model profile's)")
    parser.add_argument("--max-tokens", type=int, default=None, help="generation limit (default: the model profile's)")
    parser.add_argument("--verify-timeout", type=float, default=None, help="seconds per verification")
    add_budget_arguments(parser)
    parser.add_argument("--budgets", default=None, metavar="B1,B2,...",
                        help="a thinking-budget sweep, e.g. 0,256,1024,max: one report card with a point per budget "
                        "(each budget continues the thinking of the one below it: nothing is generated twice)")
    parser.add_argument("--progress-json", action="store_true", help=argparse.SUPPRESS)  # for the app
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of the same eval")
    parser.add_argument("--fresh", action="store_true", help="discard an interrupted run and start over")
    parser.add_argument("--json", action="store_true", help="print the finished report card as one JSON object")


def main(args) -> int:
    from workbench.terminal import printable
    from workbench.errors import UserError
    from workbench.eval.budgets import parse_budgets
    from workbench.commands.arguments import decoding_from_args
    from workbench.eval.runner import EvalOptions, run_eval

    for flag, value in (("--thinking-budget", args.thinking_budget), ("--min-thinking", args.min_thinking)):
        if value is not None and value < 0:
            raise UserError(f"{flag} must be 0 or more thinking tokens")

    options = EvalOptions(
        suite=args.suite, model=args.model, adapter=args.adapter, limit=args.limit, samples=args.samples,
        seed=args.seed, temperature=args.temp, top_p=args.top_p, max_tokens=args.max_tokens, resume=args.resume,
        fresh=args.fresh, verify_timeout=args.verify_timeout, trust_remote_code=args.trust_remote_code,
        endpoint=args.endpoint,
        thinking_budget=args.thinking_budget, min_thinking=args.min_thinking,
        budgets=tuple(parse_budgets(args.budgets)) if args.budgets is not None else None,
        json_progress=args.progress_json, decoding=decoding_from_args(args),
    )
    try:
        card, path = run_eval(options)
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(card))
        return 0
    lo, hi = card["ci95"]
    served = f" (served by {card['served']['endpoint']})" if card["served"] else ""
    print(f"{printable(card['model'])}{served} on {card['suite']['name']}: {card['accuracy']:.1%} "
          f"(95% CI {lo:.1%} to {hi:.1%}, n={card['n']}, {card['samples']} sample(s) each)")
    for point in card.get("budgets") or []:
        lo, hi = point["ci95"]
        print(f"  budget {point['label']:>6}: {point['accuracy']:6.1%} ({lo:.1%} to {hi:.1%}), "
              f"{point['mean_thinking_tokens']:,.0f} thinking tokens on average")
    claim = card.get("claim")
    if claim:
        print(f"claimed {claim['claimed']:.1f}% ({claim['source']}): "
              f"{'inside' if claim['inside'] else 'OUTSIDE'} the measured interval")
    print(f"report card: {path} (+ .md)", file=sys.stderr if args.json else sys.stdout)
    return 0

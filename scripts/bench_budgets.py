"""A 4-budget thinking sweep with prefix reuse versus four independent evals, same run.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_budgets.py [--limit 25]

Both sides run `run_eval` on r1-nano's `arithmetic` suite (greedy) on one warm ThreadEngine:
`--budgets 64,128,192,max` (each budget continues the thinking of the one below it from the KV
cache) against `--thinking-budget` 64, 128, 192 and none, one eval each. Prints the wall times,
the ratio (target >= 1.8x) and each budget's accuracy on both sides (greedy: they must agree).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGETS = (64, 128, 192, None)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=25, help="arithmetic problems per eval")
    parser.add_argument("--rounds", type=int, default=1, help="sweep/independent pairs, alternating")
    args = parser.parse_args()
    os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="bench-budgets-")

    from workbench.engine.thread import ThreadEngine
    from workbench.eval.runner import EvalOptions, run_eval
    from workbench.models.local import resolve_model

    model = str(resolve_model("r1-nano"))
    quiet = open(os.devnull, "w")
    base = dict(suite="arithmetic", model=model, limit=args.limit, fresh=True)
    sweep_times, independent_times = [], []
    with ThreadEngine() as engine:
        engine.load(model).collect()
        run_eval(EvalOptions(**{**base, "limit": 2}), engine=engine, progress_stream=quiet)  # warm-up
        for _ in range(args.rounds):
            start = time.perf_counter()
            card, _ = run_eval(EvalOptions(**base, budgets=BUDGETS), engine=engine, progress_stream=quiet)
            sweep_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            apart = [run_eval(EvalOptions(**base, thinking_budget=b), engine=engine, progress_stream=quiet)[0]
                     for b in BUDGETS]
            independent_times.append(time.perf_counter() - start)
    sweep, independent = sorted(sweep_times)[len(sweep_times) // 2], sorted(independent_times)[len(independent_times) // 2]
    print(f"r1-nano, arithmetic, {args.limit} problems, budgets 64,128,192,max, {args.rounds} round(s), medians")
    print(f"four independent evals: {independent:.1f} s   one sweep with prefix reuse: {sweep:.1f} s   "
          f"ratio {independent / sweep:.2f}x (target >= 1.8x)")
    for point, other in zip(card["budgets"], apart):
        print(f"  budget {point['label']:>4}: sweep {point['accuracy']:.1%} at {point['mean_thinking_tokens']:.0f} "
              f"thinking tokens; independent {other['accuracy']:.1%} at {other['mean_thinking_tokens']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

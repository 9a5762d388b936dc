"""Verifier speed. Math: ours (math/2) against calling Math-Verify directly, same inputs, same run.

Inputs: the 500 MATH-500 gold answers, each against three completions (a LaTeX restyling and a
re-spaced copy that must match, a wrong answer that must not): 1,500 verifications.
- bare Math-Verify: `verify(parse("$gold$"), parse(completion))` in this process, its own
  signal.alarm timeouts (main thread only; a bomb in C code is not stopped): the baseline.
- ours in-process: `get_verifier("math")`, no timeout (trusted input only).
- ours in a `VerifierPool` of 1 worker (one core, like the baseline) and of `--workers`: worker
  processes killed at a hard deadline, what eval, GRPO and `workbench verify` use.
Each repeat runs every path once, alternating, with cold parse caches (fresh pools, cleared
in-process caches); medians are printed with the ratio ours / bare (target: >= 0.5). Then each
bomb of `workbench.verify.bombs` through the pool, and the worst time to a verdict.

Code part (`--part code`): HumanEval's 164 canonical solutions through the code verifier's sandbox
(`VerifierPool`, `--workers` processes), completions/s and the honest-pass rate (must be 164/164).
Baseline, alternating with it: each same program (prompt + solution + tests) run by a plain
`python -I` subprocess with the same parallelism and no isolation (HumanEval's own harness).

    .venv/bin/python scripts/bench_verify.py [--part all|math|code] [--workers 2 --timeout 5 --repeats 3]
"""

import argparse
import json
import logging
import os
import re
import statistics
import time

from workbench.verify.bombs import EXPRESSION_BOMBS as BOMBS


def perturb(gold: str) -> list[tuple[str, bool]]:
    """(completion, should match) pairs for one gold answer."""
    restyled = gold.replace("\\frac", "\\dfrac").replace(",", ", ")
    if re.fullmatch(r"-?\d+", gold):
        wrong = str(int(gold) + 1)
    else:
        wrong = gold + "+1"
    return [
        (f"Some thinking.</think>So the answer is $\\boxed{{{restyled}}}$.", True),
        (f"Work.</think>The final answer is \\boxed{{ {gold} }}", True),
        (f"Work.</think>\\boxed{{{wrong}}}", False),
    ]


def math_cases() -> list[tuple[str, dict, bool]]:
    from workbench.eval.suites import SUITES_DIR

    golds = [json.loads(line)["answer"] for line in (SUITES_DIR / "math500_test.jsonl").read_text().splitlines()]
    return [(completion, {"answer": gold}, expected) for gold in golds for completion, expected in perturb(gold)]


def bare_math_verify():
    """Math-Verify as its README calls it, with its own timeouts."""
    import math_verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    def verify(completion: str, example: dict) -> bool:
        return bool(math_verify.verify(math_verify.parse(f"${example['answer']}$"), math_verify.parse(completion)))

    return verify


def clear_caches() -> None:
    from math_verify import parser

    from workbench.verify import math_answer

    math_answer.parse_math.cache_clear()
    parser.parse_latex_cached.cache_clear()
    parser.parse_expr_cached.cache_clear()


def timed(run) -> tuple[float, list]:
    clear_caches()
    t0 = time.perf_counter()
    out = run()
    return time.perf_counter() - t0, out


def bench_math(workers: int, timeout: float, repeats: int) -> None:
    from workbench.verify import VerifierPool, get_verifier

    cases = math_cases()
    pairs = [(c, e) for c, e, _ in cases]
    bare, ours = bare_math_verify(), get_verifier("math")
    bare("\\boxed{1}", {"answer": "1"}), ours("\\boxed{1}", {"answer": "1"})  # imports before timing

    def pooled(size: int):
        def run():
            return pool.map("math", pairs, timeout=timeout)
        with VerifierPool(size) as pool:
            pool.map("math", [("\\boxed{1}", {"answer": "1"})] * size)  # workers up, sympy imported
            return timed(run)

    times = {"bare": [], "ours": [], "pool1": [], f"pool{workers}": []}
    results = {}
    for _ in range(repeats):  # alternate, so machine load hits every path alike
        t, results["bare"] = timed(lambda: [bare(c, e) for c, e in pairs])
        times["bare"].append(t)
        t, results["ours"] = timed(lambda: [ours(c, e).score == 1.0 for c, e in pairs])
        times["ours"].append(t)
        for size in (1, workers):
            t, verdicts = pooled(size)
            times[f"pool{size}"].append(t)
            results[f"pool{size}"] = [v.score == 1.0 for v in verdicts]
            results[f"timeouts{size}"] = sum(v.score is None and "timed out" in v.reason for v in verdicts)

    n = len(cases)
    median = {k: statistics.median(v) for k, v in times.items()}

    def agreement(key):
        return sum(got == expected for got, (_, _, expected) in zip(results[key], cases)) / n

    print(f"{n} verifications (500 MATH-500 golds x 3 completions), timeout {timeout:g} s, "
          f"median of {repeats} alternating repeats, cold caches")
    rows = [("bare Math-Verify, in-process (baseline)", "bare"), ("ours, in-process, no timeout", "ours"),
            ("ours, pool of 1 worker, hard timeout", "pool1"), (f"ours, pool of {workers} workers, hard timeout",
                                                                f"pool{workers}")]
    for label, key in rows:
        print(f"  {label:<42} {n / median[key]:7.1f} verifications/s  x{median['bare'] / median[key]:.2f}  "
              f"expected verdicts {agreement(key):.1%}")
    print(f"  ratio ours (pool of 1) / bare Math-Verify: {median['bare'] / median['pool1']:.2f} (target >= 0.5)")
    print(f"  pool verdicts that timed out: {results['timeouts1']} (1 worker), {results[f'timeouts{workers}']}")


def bench_bombs(workers: int, timeout: float) -> None:
    from workbench.verify import VerifierPool

    bomb_times = []
    with VerifierPool(workers) as pool:
        pool.map("math", [("\\boxed{1}", {"answer": "1"})] * workers)
        for bomb in BOMBS:
            t0 = time.perf_counter()
            verdict = pool.verify("math", bomb, {"answer": "5"}, timeout=timeout)
            bomb_times.append((time.perf_counter() - t0, bomb[:32], verdict))
    print("bombs (time to a verdict through the pool):")
    for seconds, head, verdict in bomb_times:
        print(f"  {seconds:6.2f} s  {head!r:40}  {verdict.score}  {verdict.reason}")
    print(f"worst case: {max(t for t, _, _ in bomb_times):.2f} s (timeout {timeout:g} s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "math", "code"), default="all")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.part in ("all", "math"):
        bench_math(args.workers, args.timeout, args.repeats)
        bench_bombs(args.workers, args.timeout)
    if args.part in ("all", "code"):
        bench_code(args)


# --- code verifier ---------------------------------------------------------------------------


def humaneval_tasks() -> list[dict]:
    import gzip

    from workbench.eval.suites import SUITES_DIR

    with gzip.open(SUITES_DIR / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def run_unisolated(program: str) -> bool:
    """HumanEval's own harness in spirit: the program in a plain interpreter, no isolation."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as home:
        try:
            return subprocess.run([sys.executable, "-I", "-c", program], cwd=home, capture_output=True,
                                  timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def bench_code(args) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from workbench.verify import VerifierPool

    tasks = humaneval_tasks()
    items = [(t["canonical_solution"], {k: t[k] for k in ("prompt", "test", "entry_point")}) for t in tasks]
    programs = [f"{t['prompt']}{t['canonical_solution']}\n\n{t['test']}\n\ncheck({t['entry_point']})\n" for t in tasks]
    timeout = max(args.timeout, 30.0)
    with VerifierPool(args.workers) as pool, ThreadPoolExecutor(args.workers) as executor:
        pool.map("code", items[: args.workers], timeout=timeout)  # workers up and warm
        plain_times, sandbox_times = [], []
        for _ in range(args.repeats):  # alternate, so machine load hits both paths alike
            t0 = time.perf_counter()
            plain = list(executor.map(run_unisolated, programs))
            plain_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verdicts = pool.map("code", items, timeout=timeout)
            sandbox_times.append(time.perf_counter() - t0)
    t_plain, t_sandbox = statistics.median(plain_times), statistics.median(sandbox_times)
    n = len(items)
    passed = sum(v.score == 1.0 for v in verdicts)
    print(f"{n} HumanEval canonical solutions, {args.workers} workers, median of {args.repeats} alternating repeats")
    print(f"plain python -I, no isolation (baseline): {n / t_plain:6.1f} completions/s  passed {sum(plain)}/{n}")
    print(f"code verifier in its sandbox:             {n / t_sandbox:6.1f} completions/s  passed {passed}/{n}")
    print(f"ratio sandbox / plain: {t_plain / t_sandbox:.2f}")
    for task, verdict in zip(tasks, verdicts):
        if verdict.score != 1.0:
            print(f"  not passed: {task['task_id']}: {verdict.reason}")


if __name__ == "__main__":
    main()

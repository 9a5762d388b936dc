"""Math verification speed on the 500 MATH-500 gold answers, and the worst case over sympy bombs.

Each gold answer is checked against three perturbed predictions (a LaTeX restyling that must
match, the same answer boxed with extra spacing, and a wrong one that must not), so 1,500
verifications. Baseline: the verifier called in this process, one at a time, no timeout (unsafe
for untrusted text, the fastest possible path). Measured: the same list through `VerifierPool`
(worker processes, hard timeout per verification), alternating with the baseline. Prints verifications/s of each and the ratio,
the agreement with the expected verdicts, then each bomb's time to a verdict through the pool.

Code part (`--part code`): HumanEval's 164 canonical solutions through the code verifier's sandbox
(`VerifierPool`, `--workers` processes), completions/s and the honest-pass rate (must be 164/164).
Baseline, alternating with it: each same program (prompt + solution + tests) run by a plain
`python -I` subprocess with the same parallelism and no isolation (HumanEval's own harness).

    .venv/bin/python scripts/bench_verify.py [--part all|math|code] [--workers 2 --timeout 5 --repeats 3]
"""

import argparse
import json
import os
import re
import statistics
import time
from pathlib import Path

from workbench.verify.bombs import EXPRESSION_BOMBS as BOMBS


def perturb(gold: str) -> list[tuple[str, bool]]:
    """(completion, should match) triples for one gold answer."""
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "math", "code"), default="all")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.part in ("all", "math"):
        bench_math(args)
    if args.part in ("all", "code"):
        bench_code(args)


def bench_math(args) -> None:
    from workbench.eval.suites import SUITES_DIR
    from workbench.verify import VerifierPool, get_verifier

    golds = [json.loads(line)["answer"] for line in (SUITES_DIR / "math500_test.jsonl").read_text().splitlines()]
    cases = [(completion, {"answer": gold}, expected) for gold in golds for completion, expected in perturb(gold)]
    verify = get_verifier("math")
    verify("\\boxed{1}", {"answer": "1"})  # import sympy and Math-Verify before timing

    with VerifierPool(args.workers) as pool:
        pool.map("math", [("\\boxed{1}", {"answer": "1"})] * args.workers)  # workers up and warm
        direct_times, pool_times = [], []
        for _ in range(args.repeats):  # alternate, so machine load hits both paths alike
            t0 = time.perf_counter()
            direct = [verify(c, e) for c, e, _ in cases]
            direct_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pooled = pool.map("math", [(c, e) for c, e, _ in cases], timeout=args.timeout)
            pool_times.append(time.perf_counter() - t0)
        t_direct, t_pool = statistics.median(direct_times), statistics.median(pool_times)

        bomb_times = []
        for bomb in BOMBS:
            t0 = time.perf_counter()
            verdict = pool.verify("math", bomb, {"answer": "5"}, timeout=args.timeout)
            bomb_times.append((time.perf_counter() - t0, bomb[:32], verdict))

    def agreement(verdicts):
        return sum((v.score == 1.0) == expected for v, (_, _, expected) in zip(verdicts, cases)) / len(cases)

    n = len(cases)
    print(f"{n} verifications ({len(golds)} MATH-500 golds x 3 perturbations), {args.workers} workers, "
          f"timeout {args.timeout:g} s, median of {args.repeats} alternating repeats")
    print(f"in-process, sequential (baseline): {n / t_direct:8.1f} verifications/s  agreement {agreement(direct):.1%}")
    print(f"worker pool:                       {n / t_pool:8.1f} verifications/s  agreement {agreement(pooled):.1%}")
    print(f"ratio pool / in-process: {t_direct / t_pool:.2f}")
    timeouts = sum(v.score is None and "timed out" in v.reason for v in pooled)
    print(f"pool verdicts that timed out: {timeouts}")
    print("bombs (time to a verdict through the pool):")
    for seconds, head, verdict in bomb_times:
        print(f"  {seconds:6.2f} s  {head!r:40}  {verdict.score}  {verdict.reason}")
    print(f"worst case: {max(t for t, _, _ in bomb_times):.2f} s (timeout {args.timeout:g} s)")



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

"""One-shot `workbench run` against `mlx_lm.generate` on the same model, prompt and greedy decoding: whole
process wall time, peak RSS, and for `run` the time from its last token on the pipe to its exit.

Pairs run alternately (run, generate, run, generate, ...) so load drift falls on both; medians and the
median of the per-pair ratios are printed. `run` saves its response unless --no-save, into one temporary WORKBENCH_HOME that the warm-up run creates (a user's store exists
after their first run); it starts the way a user starts it (`python -m workbench`, which re-executes itself
once to preload OpenBLAS on Linux). mlx_lm.generate gets no preload of its own; `--baseline-blas`
preloads OpenBLAS for it too (its environment, no re-exec), the fair comparison of the work itself.

    .venv/bin/python scripts/bench_run.py [--pairs 7] [--no-save] [--baseline-blas]

`--exit N` measures only what follows the answer, without mlx_lm.generate: N runs with saving and N with
--no-save, alternating, each timed from the arrival on the pipe of the answer's last byte (the last
streamed answer text; the stats line follows it) to the stats line's arrival and to the moment `wait4`
returns (the process has exited: the shell's prompt would be back).

    .venv/bin/python scripts/bench_run.py --exit 9
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "r1-nano"
PROMPT = "What is 1234 + 5678?"
OPENBLAS = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"
STATS_START = b"\n\n["  # `run` prints its stats line after the last token (plain text when piped)


def timed(cmd: list[str], env: dict) -> dict:
    """Wall seconds, peak RSS (MB) of the child, and when each chunk of its stdout arrived."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    chunks: list[tuple[float, bytes]] = []
    errors: list[bytes] = []

    def read_out() -> None:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            chunks.append((time.monotonic(), chunk))

    readers = [threading.Thread(target=read_out),
               threading.Thread(target=lambda: errors.append(proc.stderr.read()))]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    end = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    if proc.returncode != 0:
        sys.exit(f"{cmd[:4]} exited {proc.returncode}: {b''.join(errors).decode(errors='replace')[-2000:]}")
    return {"wall": end - start, "rss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime, "chunks": chunks, "start": start, "end": end}


def answer_end(result: dict) -> tuple[float, float] | None:
    """(arrival of the answer's last byte, arrival of the stats line's first byte) on the pipe. The last
    byte before the stats line is the last streamed answer text (the last token). When both came in one
    chunk, both times are that chunk's (an upper bound for the answer's)."""
    chunks = result["chunks"]
    out = b"".join(c for _, c in chunks)
    stats_at = out.rfind(STATS_START)
    if stats_at <= 0:
        return None
    seen, answer_at = 0, None
    for arrived, chunk in chunks:
        if answer_at is None and seen + len(chunk) >= stats_at:  # holds the answer's last byte
            answer_at = arrived
        if seen + len(chunk) > stats_at:  # holds the stats line's first byte
            return answer_at, arrived
        seen += len(chunk)
    return None


def after_last_token(result: dict) -> float | None:
    """Seconds from the arrival of `run`'s last token on the pipe to its exit: the user sees the answer,
    then waits this long for the prompt."""
    ends = answer_end(result)
    return None if ends is None else result["end"] - ends[0]


def exit_gaps(run_cmd: list[str], env: dict, runs: int) -> None:
    """`runs` runs with saving and `runs` with --no-save, alternating after one warm-up run of each: the
    time from the answer's last byte to the stats line and to the process's exit, medians and max."""
    med = statistics.median
    variants = {"saving on": run_cmd, "--no-save": [*run_cmd, "--no-save"]}
    gaps: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):  # the first round writes the store and the bytecode: not counted
            for name, cmd in (variants.items() if i % 2 == 0 else reversed(variants.items())):
                result = timed(cmd, dict(env, WORKBENCH_HOME=tmp))
                ends = answer_end(result)
                if ends is None:
                    sys.exit(f"no stats line after the answer in: {b''.join(c for _, c in result['chunks'])[-500:]!r}")
                if i:
                    gaps[name].append((ends[1] - ends[0], result["end"] - ends[0]))
    load = os.getloadavg()
    print(f"{runs} runs each, alternating; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    for name, values in gaps.items():
        to_stats = [s * 1000 for s, _ in values]
        to_exit = [e * 1000 for _, e in values]
        print(f"{'workbench run ' + name:26s} last answer byte -> stats line: median {med(to_stats):5.1f} ms, "
              f"max {max(to_stats):5.1f} ms; -> exit: median {med(to_exit):5.1f} ms, max {max(to_exit):5.1f} ms "
              f"(target <= 50 ms)")
        print(f"{'':26s} to exit, each run: {' '.join(f'{x:.0f}' for x in to_exit)} ms")
    if len(gaps) == 2:  # the baseline measured in the same run: what saving adds after the last token
        (a, va), (b, vb) = gaps.items()
        print(f"to exit, {a} / {b}: {med([e for _, e in va]) / med([e for _, e in vb]):.2f}x (medians)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--no-save", action="store_true", help="run with --no-save")
    ap.add_argument("--baseline-blas", action="store_true", help="preload OpenBLAS for mlx_lm.generate too")
    ap.add_argument("--max-tokens", type=int, default=300, help="r1-nano's profile: 300, greedy")
    ap.add_argument("--exit", type=int, default=0, metavar="N",
                    help="only the time after the answer: N runs with saving and N with --no-save, no mlx_lm.generate")
    args = ap.parse_args()
    py = sys.executable
    # PYTHONDONTWRITEBYTECODE (set on some CI shells) would make `run` compile its own modules on every
    # start, while mlx_lm's come precompiled from its wheel: the warm-up pair writes the bytecode a user has.
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("LD_PRELOAD", "WORKBENCH_BLAS_REEXEC", "PYTHONDONTWRITEBYTECODE")}
    run_cmd = [py, "-m", "workbench", "run", "--model", str(MODEL), PROMPT, "--max-tokens", str(args.max_tokens),
               "--temp", "0", *(["--no-save"] if args.no_save else [])]
    gen_cmd = [py, "-m", "mlx_lm", "generate", "--model", str(MODEL), "--prompt", PROMPT,
               "--max-tokens", str(args.max_tokens), "--temp", "0"]
    if args.exit:
        return exit_gaps([a for a in run_cmd if a != "--no-save"], base_env, args.exit)  # it runs both
    gen_env = dict(base_env, **({"LD_PRELOAD": OPENBLAS} if args.baseline_blas else {}))
    runs, gens, gaps = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs + 1):  # the first pair warms the page cache (and bytecode): not counted
            run = timed(run_cmd, dict(base_env, WORKBENCH_HOME=tmp))
            gen = timed(gen_cmd, gen_env)
            if i == 0:
                continue
            runs.append(run)
            gens.append(gen)
            gaps.append(after_last_token(run))
    ratios = [r["wall"] / g["wall"] for r, g in zip(runs, gens)]
    med = statistics.median
    load = os.getloadavg()
    label = "workbench run" + (" --no-save" if args.no_save else "")
    print(f"{args.pairs} pairs, alternating; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"{label:26s} {med(r['wall'] for r in runs):6.3f} s  (min {min(r['wall'] for r in runs):.3f}, "
          f"max {max(r['wall'] for r in runs):.3f})  peak {med(r['rss_mb'] for r in runs):5.1f} MB  "
          f"cpu {med(r['cpu'] for r in runs):.3f} s")
    print(f"{'mlx_lm.generate' + (' +OpenBLAS' if args.baseline_blas else ''):26s} "
          f"{med(g['wall'] for g in gens):6.3f} s  (min {min(g['wall'] for g in gens):.3f}, "
          f"max {max(g['wall'] for g in gens):.3f})  peak {med(g['rss_mb'] for g in gens):5.1f} MB  "
          f"cpu {med(g['cpu'] for g in gens):.3f} s")
    print(f"ratio run/generate: median of pairs {med(ratios):.3f} (pairs: {' '.join(f'{x:.2f}' for x in ratios)}); "
          f"of medians {med(r['wall'] for r in runs) / med(g['wall'] for g in gens):.3f}  (target <= 1.0)")
    first = [[r["chunks"][0][0] - r["start"] for r in rs if r["chunks"]] for rs in (runs, gens)]
    print(f"first output after: run {med(first[0]):.3f} s, generate {med(first[1]):.3f} s (medians)")
    known = [g for g in gaps if g is not None]
    if known:
        print(f"run: last token to exit: median {med(known) * 1000:.0f} ms, max {max(known) * 1000:.0f} ms "
              f"(target <= 50 ms)")


if __name__ == "__main__":
    main()

"""Per-delta paths on hostile streams: time for 2N versus N, in one run (linear: a ratio near 2).

Cases from issue #22/#21: nested `\\frac{` (LaTeX), an unclosed `\\boxed{` / `$` then many small
deltas (the answer pane's stream), inspection fed deltas without word breaks ("7") versus words
("t "), steps of a long thinking with many markers, and `workbench run` on N one-character deltas
with and without saving (a scripted engine, no model).

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_linear.py [--scale 1]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def latex_nested(n):
    from workbench.tui.latex import to_unicode

    to_unicode("$" + "\\frac{" * n + "$")


def latex_stream(opener):
    def run(n):
        from workbench.tui.latex import LatexStream

        s = LatexStream(markdown=True)
        s.feed("So " + opener)
        for _ in range(n):
            s.feed("x")
        s.finish()
    return run


def inspect_deltas(delta):
    def run(n):
        from workbench.inspect import Inspector

        inspector = Inspector("q")
        for _ in range(n):
            inspector.feed_thinking(delta)
        inspector.report()
    return run


def steps_text(n):
    from workbench.inspect.markers import find_markers
    from workbench.inspect.steps import segment_steps

    text = "x. Wait " * n
    segment_steps(text, find_markers(text))


RUN = """
import sys, workbench.engine.thread as w
from workbench.engine.scripted import ScriptedEngine, Script
from workbench.engine.events import Think, Answer
n = int(sys.argv[1])
w.ThreadEngine = lambda: ScriptedEngine([Script([Think("7", 1) for _ in range(n)] + [Answer("42", 1)])])
from workbench.cli import main
sys.exit(main(["run", "hi", *sys.argv[2:]]))
"""


def run_command(*extra):
    def run(n):
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "WORKBENCH_HOME": home}
            subprocess.run([sys.executable, "-c", RUN, str(n), *extra], check=True, env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    k = args.scale
    cases = [
        ("LaTeX: nested \\frac{ (N levels)", latex_nested, 25_000),
        ("LaTeX stream: unclosed \\boxed{ then N deltas", latex_stream("\\boxed{"), 8_000),
        ("LaTeX stream: unclosed $ then N deltas", latex_stream("$"), 8_000),
        ("inspection: N deltas of '7'", inspect_deltas("7"), 40_000),
        ("inspection: N deltas of 't '", inspect_deltas("t "), 40_000),
        ("steps: N markers ('x. Wait ' * N, 8 chars each)", steps_text, 125_000),
        ("run: N one-character deltas, saved", run_command(), 100_000),
        ("run: N one-character deltas, --no-save", run_command("--no-save"), 100_000),
    ]
    print(f"{'case':<52} {'N':>8} {'t(N)':>8} {'t(2N)':>8} {'ratio':>6}   (best of {args.repeats}, after a warm-up)")
    for name, fn, n in cases:
        n = int(n * k)
        fn(max(1, n // 10))  # warm-up: imports, tiktoken's table
        a = min(seconds(lambda: fn(n)) for _ in range(args.repeats))
        b = min(seconds(lambda: fn(2 * n)) for _ in range(args.repeats))
        print(f"{name:<52} {n:>8,} {a:>7.2f}s {b:>7.2f}s {b / a:>6.2f}", flush=True)


if __name__ == "__main__":
    main()

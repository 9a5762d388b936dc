"""How long `workbench --help` and `workbench doctor` take, against a bare `python -c pass` in the same run.

Target: `workbench --help` under 0.3 s on our 2-core CI machine. Also reports whether MLX was imported.

    .venv/bin/python scripts/bench_cli_startup.py [--repeats 15]
"""

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    baseline = timed([py, "-c", "pass"], args.repeats)
    help_time = timed([py, "-m", "workbench", "--help"], args.repeats)
    doctor_time = timed([py, "-m", "workbench", "doctor"], max(3, args.repeats // 3))
    probe = ("import sys; from workbench.cli import build_parser; build_parser().format_help(); "
             "print(sorted(m for m in ('mlx', 'mlx.core', 'mlx_lm', 'textual', 'sympy') if m in sys.modules))")
    heavy = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    print(f"python -c pass:     {baseline * 1000:7.1f} ms")
    print(f"workbench --help:   {help_time * 1000:7.1f} ms  ({help_time / baseline:.2f}x python startup; target < 300 ms)")
    print(f"workbench doctor:   {doctor_time * 1000:7.1f} ms  ({doctor_time / baseline:.2f}x; imports MLX only to list backends)")
    print(f"heavy modules imported by building --help: {heavy}")


if __name__ == "__main__":
    main()

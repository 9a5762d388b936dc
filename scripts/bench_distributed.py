"""Tokens/s and time to first token: 1 rank versus 2 ranks (tensor and pipeline), same model, one run.

Two ranks run over loopback (ring backend) on this machine, started as `--local-ranks 2` starts them
(`workbench.distributed.local`; `mlx.launch`'s output loop would take a core), so they share its
cores with each other: the numbers show the cost of the distributed path (collectives, the
per-token hop), not the gain of a second machine (see docs/distributed.md for that estimate).
Also prints the bytes each rank sends per decoded token, computed from the model's shapes.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_distributed.py [--hidden 512 --layers 8]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(folder: str, mode: str, prompt_tokens: int, tokens: int, repeats: int) -> None:
    """Runs on every rank: load, warm up, then time prefill + decode with greedy sampling."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    group = mx.distributed.init()
    if group.size() == 1:
        from workbench.engine.loader import load_model

        model = load_model(Path(folder)).model
    else:
        from workbench.distributed.shard import load_sharded

        model = load_sharded(Path(folder), group, mode)[0].model
    prompt = mx.array([(7 * i) % 200 + 10 for i in range(prompt_tokens)])
    runs = []
    for r in range(repeats + 1):  # the first run warms up
        start = time.perf_counter()
        first = None
        for n, _ in enumerate(generate_step(prompt, model, max_tokens=tokens)):
            if n == 0:
                first = time.perf_counter()
        end = time.perf_counter()
        if r:
            runs.append({"ttft": first - start, "tps": (tokens - 1) / (end - first)})
    if group.rank() == 0:
        runs.sort(key=lambda x: x["tps"])
        print("RESULT " + json.dumps(runs[len(runs) // 2]), flush=True)


def run(command: list[str], **env) -> dict:
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        sys.exit(f"bench failed: {' '.join(command)}\n{out.stdout}\n{out.stderr}")
    return json.loads(lines[0][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", nargs=2, metavar=("FOLDER", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.prompt_tokens, args.tokens, args.repeats)
        return

    from workbench.engine.tiny import make_tiny_model

    folder = make_tiny_model(Path(tempfile.mkdtemp()) / "bench", hidden=args.hidden, layers=args.layers, heads=8, kv_heads=4)
    me = [sys.executable, __file__, "--prompt-tokens", str(args.prompt_tokens), "--tokens", str(args.tokens),
          "--repeats", str(args.repeats), "--worker", str(folder)]
    launch = [sys.executable, "-m", "workbench.distributed.local", "-n", "2", "--"]
    results = {"1 rank": run(me + ["single"])}
    for mode in ("tensor", "pipeline"):
        # One BLAS thread per rank: the two ranks split the cores one process would use.
        results[f"2 ranks, {mode}"] = run(launch + me + [mode], OPENBLAS_NUM_THREADS="1")

    width = 4  # float32 activations here (bfloat16 on a Mac: 2 bytes)
    h, n = args.hidden, args.layers
    volume = {"1 rank": 0,
              # two all-reduces of one hidden state per layer; a ring all-reduce sends 2(N-1)/N of it per rank
              "2 ranks, tensor": 2 * n * h * width * 2 * (2 - 1) / 2,
              # one hidden state to the next rank, then the all_gather of the last rank's output
              "2 ranks, pipeline": h * width + h * width}
    base = results["1 rank"]
    print(f"model: random Qwen2, hidden {h}, {n} layers; prompt {args.prompt_tokens} tokens, "
          f"{args.tokens} decoded, median of {args.repeats}")
    print(f"{'setup':<20} {'decode tok/s':>12} {'ratio':>6} {'TTFT s':>8} {'ratio':>6} {'sent/token/rank':>16}")
    for name, r in results.items():
        print(f"{name:<20} {r['tps']:>12.1f} {r['tps'] / base['tps']:>6.2f} {r['ttft']:>8.3f} "
              f"{r['ttft'] / base['ttft']:>6.2f} {volume[name] / 1024:>13.1f} KB")


if __name__ == "__main__":
    main()

"""Tokens/s of workbench's engine path versus a bare mlx_lm.stream_generate loop, in one run.

Same model, prompt, greedy decoding and token budget; the two paths alternate over several repeats
(this machine is noisy) and the script prints the median of each and their ratio (target >= 0.98).
The engine path is the whole thing a user gets: the engine thread, the job queue, the reasoning
splitter and per-phase stats, read by the calling thread.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_stream.py [--hidden 512 --layers 8 --tokens 300 --repeats 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default=None, help="an existing model folder instead of a random one")
    args = ap.parse_args()

    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from workbench.engine.events import ChatRequest, Done, Sampling
    from workbench.engine.prompt import build_prompt
    from workbench.engine.tiny import make_bench_model
    from workbench.engine.thread import ThreadEngine

    if args.model:
        folder = Path(args.model)
    else:
        folder = make_bench_model(Path(tempfile.mkdtemp()) / "bench", hidden=args.hidden, layers=args.layers)
    prompt_text = "Please reason step by step: what is 1234+5678?"
    sampling = Sampling(temperature=0.0, max_tokens=args.tokens)

    model, tokenizer = load(str(folder))
    from workbench.engine.events import Message

    prompt = build_prompt(tokenizer, [Message("user", prompt_text)])

    def bare() -> float:
        start, n = time.perf_counter(), 0
        for r in stream_generate(model, tokenizer, prompt, max_tokens=args.tokens, sampler=make_sampler(0.0)):
            n = r.generation_tokens
        return n / (time.perf_counter() - start)

    engine = ThreadEngine()
    engine.load(folder).collect()

    def ours() -> float:
        start = time.perf_counter()
        *_, done = list(engine.generate(ChatRequest.single(prompt_text, sampling)))
        assert isinstance(done, Done), done
        return done.stats.generated_tokens / (time.perf_counter() - start)

    bare(), ours()  # warm-up (compilation, caches)
    base, mine = [], []
    for _ in range(args.repeats):
        base.append(bare())
        mine.append(ours())
    b, m = statistics.median(base), statistics.median(mine)
    print(f"model: {folder.name} hidden={args.hidden} layers={args.layers}, {args.tokens} tokens, "
          f"{args.repeats} alternating repeats")
    print(f"bare mlx_lm.stream_generate: {b:8.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in base)})")
    print(f"workbench engine path:       {m:8.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in mine)})")
    print(f"ratio (engine / bare): {m / b:.3f}  (target >= 0.98)")
    engine.close()


if __name__ == "__main__":
    main()

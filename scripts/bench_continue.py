"""Time to the first new token when continuing from an edit near the end of a long thinking, with the
engine's KV-cache reuse (`generate.PromptCache`) versus re-running the whole prompt, in one run.

The thinking is `--prefix` tokens long (the bench model's tokenizer is one token per byte); each round
edits its last `--edit` characters differently, so the cached run recomputes only the changed tail.
Both paths are the engine's own (`stream_reasoning` on the engine thread): one with the cache the
previous round left, one with an empty cache. Rounds alternate; medians and their ratio are printed
(target >= 5x for a 2,000-token prefix).

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_continue.py [--prefix 2000 --edit 20 --repeats 5]
"""

import argparse
import statistics
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--prefix", type=int, default=2000, help="thinking tokens before the edit")
    ap.add_argument("--edit", type=int, default=20, help="characters rewritten at the end of the thinking")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from workbench.engine.events import ChatRequest, Done, Message, Sampling
    from workbench.engine.generate import PromptCache, stream_reasoning
    from workbench.engine.thread import ThreadEngine
    from workbench.engine.tiny import make_bench_model

    folder = make_bench_model(Path(tempfile.mkdtemp()) / "bench", hidden=args.hidden, layers=args.layers,
                              max_positions=4096)

    words = "First, add the ones: 4 plus 8 is 12, write 2 and carry 1. Then the tens. Wait, check again. "
    thinking = (words * (args.prefix // len(words) + 1))[:args.prefix]
    messages = (Message("user", "Please reason step by step: what is 1234+5678?"),)
    sampling = Sampling(temperature=0.0, max_tokens=1)

    engine = ThreadEngine()
    engine.load(folder).collect()
    warm = PromptCache()

    def first_token(edited: str, cache) -> tuple[float, int]:
        request = ChatRequest(messages, sampling, continue_thinking=edited)
        done = engine.call(lambda loaded: list(stream_reasoning(loaded, request, cache=cache))[-1]).result()
        assert isinstance(done, Done), done
        return done.stats.time_to_first_token, done.stats.prompt_cached_tokens

    first_token(thinking, warm)  # the original thinking, in the cache (and the model warmed up)
    cached, fresh, reused = [], [], []
    for r in range(args.repeats):
        edited = thinking[:-args.edit] + f"edit {r}: so it is 6912."[:args.edit]
        for path in ("cached", "fresh") if r % 2 == 0 else ("fresh", "cached"):
            t, n = first_token(edited, warm if path == "cached" else PromptCache())
            (cached if path == "cached" else fresh).append(t)
            if path == "cached":
                reused.append(n)
    engine.close()
    c, f = statistics.median(cached), statistics.median(fresh)
    print(f"prefix {args.prefix} tokens of thinking, last {args.edit} characters edited, model hidden {args.hidden} "
          f"x {args.layers} layers, {args.repeats} rounds")
    print(f"re-run the whole prompt: first new token {f * 1000:.1f} ms (median; {', '.join(f'{x * 1000:.0f}' for x in fresh)})")
    print(f"continue from the cache:  first new token {c * 1000:.1f} ms (median; {', '.join(f'{x * 1000:.0f}' for x in cached)}); "
          f"{min(reused)}-{max(reused)} prompt tokens reused")
    print(f"speed-up: {f / c:.1f}x")


if __name__ == "__main__":
    main()

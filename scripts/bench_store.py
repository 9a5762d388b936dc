"""Streaming tokens/s with the session store on (recorder fed every event) versus off, in one run.

Same engine, model, prompt and greedy decoding; the two paths alternate over several repeats and
the script prints the median of each and their ratio (target >= 0.98), plus the median of the
per-repeat ratios and the best-of ratio, which shared, busy machines need. "On" is what `workbench run`
does: each event goes to a Recorder (incremental inspection, text written by a background thread
every 0.5 s). Tokens/s is measured up to the Done event; the end-of-response work (final
inspection report and write) is timed separately.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_store.py [--tokens 300 --repeats 5]
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
    args = ap.parse_args()

    from workbench.engine.events import ChatRequest, Done, Sampling
    from workbench.engine.tiny import make_bench_model
    from workbench.engine.thread import ThreadEngine
    from workbench.sessions import Store
    from workbench.sessions.recorder import Recorder

    tmp = Path(tempfile.mkdtemp())
    folder = make_bench_model(tmp / "bench", hidden=args.hidden, layers=args.layers)
    prompt = "Please reason step by step: what is 1234+5678?"
    sampling = Sampling(temperature=0.0, max_tokens=args.tokens)

    engine = ThreadEngine()
    engine.load(folder).collect()
    store = Store.open(tmp / "sessions.db")
    finish_ms = []

    def stream(record: bool) -> float:
        start = time.perf_counter()
        job = engine.generate(ChatRequest.single(prompt, sampling))
        recorder = Recorder.for_prompt(store, prompt, engine.info, sampling) if record else None
        for event in job:
            if isinstance(event, Done):
                elapsed = time.perf_counter() - start
                if recorder:
                    t = time.perf_counter()
                    recorder.feed(event)
                    finish_ms.append((time.perf_counter() - t) * 1000)
                return event.stats.generated_tokens / elapsed
            if recorder:
                recorder.feed(event)
        raise RuntimeError("no Done")

    stream(False), stream(True)  # warm-up (compilation, caches, o200k load)
    finish_ms.clear()
    off, on = [], []
    for _ in range(args.repeats):
        off.append(stream(False))
        on.append(stream(True))
    b, m = statistics.median(off), statistics.median(on)
    print(f"model: hidden={args.hidden} layers={args.layers}, {args.tokens} tokens, {args.repeats} alternating repeats")
    print(f"store off: {b:8.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in off)})")
    print(f"store on:  {m:8.1f} tok/s  (runs: {', '.join(f'{x:.0f}' for x in on)})")
    pairs = statistics.median(on_ / off_ for on_, off_ in zip(on, off))
    print(f"ratio of medians (on / off): {m / b:.3f}  (target >= 0.98)")
    print(f"median of per-repeat ratios: {pairs:.3f}   best-of ratio: {max(on) / max(off):.3f}  "
          "(robust to load that changes between repeats)")
    print(f"end-of-response work (final inspection + write), median: {statistics.median(finish_ms):.1f} ms")
    # The per-event cost on the caller's thread, without a model: 20,000 three-character deltas.
    from workbench.engine.events import Stats, Think

    recorder = Recorder.for_prompt(store, prompt)
    words = ("Wait", ", ", "let", " me", " check", ": ", "12", "+", "30", " = ", "42", ".\n\n", "So", " the")
    deltas = [Think(words[i % len(words)]) for i in range(20000)]
    t = time.perf_counter()
    for d in deltas:
        recorder.feed(d)
    per_event = (time.perf_counter() - t) / len(deltas) * 1e6
    recorder.feed(Done(Stats(finish_reason="stop")))
    print(f"recorder.feed per delta (no model): {per_event:.1f} us "
          f"= {per_event * m / 1e4:.2f}% of a token's time at {m:.0f} tok/s")
    store.close()
    engine.close()


if __name__ == "__main__":
    main()

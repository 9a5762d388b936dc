"""What sampling rejection traces through the engine costs, against the batched sampler in the same run.

`workbench train rejection` asks its engine for the K samples of a prompt one after another (the
engine protocol has no batch request; a remote engine is one stream per request). The baseline is
`train.rollout.sample_group`: the K samples of a prompt decoded as one batch on this thread, as
rejection did before it took any engine. Both generate the same number of completions of the same
prompts at the same temperature and token limit; verification is left out (the same for both).
Rounds alternate the two; the ratio is engine time / batched time per round.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_rejection.py [--prompts 8 -k 4]
"""

import argparse
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="r1-nano")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import mlx.core as mx

    from workbench.engine.events import ChatRequest, Done, Message, Sampling
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt
    from workbench.engine.thread import ThreadEngine
    from workbench.models.local import resolve_model
    from workbench.train.data import load_examples
    from workbench.train.rollout import sample_group

    prompts = [e["prompt"] for e in load_examples("arithmetic", args.prompts, 0, "train")[:args.prompts]]
    loaded = load_model(resolve_model(args.model))
    tokenizer, profile = loaded.tokenizer, loaded.profile
    engine = ThreadEngine()
    engine.load(args.model).collect()

    def batched() -> int:
        mx.random.seed(0)
        tokens = 0
        for text in prompts:
            prompt = build_prompt(tokenizer, (Message("user", text),), force_think=profile.force_think,
                                  system_prompt=profile.system_prompt)
            ids = tokenizer.encode(prompt, add_special_tokens=False)
            group = sample_group(loaded.model, ids, args.k, args.max_tokens, tokenizer.eos_token_ids, 1.0, 1.0)
            tokens += sum(len(c) for c in group.completions)
        return tokens

    def one_by_one() -> int:
        tokens = 0
        for i, text in enumerate(prompts):
            for j in range(args.k):
                *_, end = engine.generate(ChatRequest.single(text, Sampling(1.0, 1.0, args.max_tokens, i * args.k + j))).collect()
                assert isinstance(end, Done), end
                tokens += end.stats.generated_tokens
        return tokens

    ratios = []
    for r in range(args.rounds):
        t = time.perf_counter()
        batched_tokens = batched()
        batched_time = time.perf_counter() - t
        t = time.perf_counter()
        engine_tokens = one_by_one()
        engine_time = time.perf_counter() - t
        ratios.append(engine_time / batched_time)
        print(f"round {r + 1}: batched {batched_time:.1f} s ({batched_tokens} tokens, {batched_tokens / batched_time:.0f} tok/s); "
              f"engine one by one {engine_time:.1f} s ({engine_tokens} tokens, {engine_tokens / engine_time:.0f} tok/s); "
              f"time ratio {ratios[-1]:.2f}", flush=True)
    engine.close()
    print(f"{args.prompts} prompts x {args.k} samples: engine / batched time, median of {args.rounds} rounds: "
          f"{statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()

"""GRPO makes the reward rise: a tiny model, a short cold start, then `train_grpo` with the real verifiers.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/grpo_demo.py

1. A tiny Qwen2 (`make_tiny_model`) is taught (`teach`, full SFT) the reply layout
   "3+4=7</think>The answer is \\boxed{7}." for 40 single-digit additions, each once right and
   once off by one ("3+4=8 ... \\boxed{8}"), so sampled answers are right about half the time.
   (Teaching only a subset right does not work: taught prompts are then always right and the
   others always wrong, so every group has equal rewards and GRPO has no signal.)
2. GRPO (LoRA, group size 8, temperature 1.0, math + format verifiers in the verifier pool) on a
   JSONL suite of those additions; the file's last 10% is the trainer's held-out split (taught in
   the cold start like the rest, never seen by GRPO).
3. Prints the mean reward and accuracy over the first and last steps, and greedy held-out accuracy
   before and after (the trainer's `evaluate`). Seeded: the same numbers every run.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path


def additions(seed: int) -> list[tuple[str, str, str]]:
    """All a+b with single digits, shuffled: (prompt, answer, reply)."""
    rows = [(f"What is {a}+{b}?", str(a + b), f"{a}+{b}={a + b}</think>The answer is \\boxed{{{a + b}}}.")
            for a in range(10) for b in range(10)]
    random.Random(seed).shuffle(rows)
    return rows


def slip(reply: str, answer: str) -> str:
    """The same reply with the answer one too high."""
    return reply.replace(f"={answer}<", f"={int(answer) + 1}<").replace(f"{{{answer}}}", f"{{{int(answer) + 1}}}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/grpo-demo")
    p.add_argument("--problems", type=int, default=40, help="additions in the suite (the last 10%% held out)")
    p.add_argument("--wrong", type=int, default=1, help="off-by-one replies per right one in the cold start")
    p.add_argument("--teach-steps", type=int, default=150)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--prompts-per-step", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=5e-4)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--window", type=int, default=15, help="steps averaged at the start and the end")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from workbench.engine.events import Message
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt
    from workbench.engine.tiny import make_tiny_model, teach
    from workbench.train.config import GRPOConfig
    from workbench.train.rewards import pool_scorer
    from workbench.train.trainer import evaluate, train_grpo
    from workbench.verify import VerifierPool

    t0 = time.perf_counter()
    out = Path(args.out)
    rows = additions(args.seed)[:args.problems]
    folder = make_tiny_model(out / "model", seed=args.seed)
    # Every addition is taught once right and `--wrong` times off by one (a systematic slip to unlearn).
    taught = [(q, reply) for q, _, reply in rows]
    taught += [(q, slip(reply, a)) for q, a, reply in rows for _ in range(args.wrong)]
    loss = teach(folder, taught, steps=args.teach_steps, seed=args.seed)
    suite = out / "suite.jsonl"  # the last 10% is the trainer's held-out split
    suite.write_text("".join(json.dumps({"prompt": q, "answer": a}) + "\n" for q, a, _ in rows))
    held_out = [{"prompt": q, "answer": a} for q, a, _ in rows[len(rows) - len(rows) // 10:]]
    print(f"cold start: {len(rows)} additions, 1 right + {args.wrong} wrong replies each, {args.teach_steps} steps, loss {loss:.3f} ({time.perf_counter() - t0:.0f} s)")

    config = GRPOConfig.from_dict({
        "model": str(folder), "suite": str(suite), "out": str(out / "run"), "verifiers": {"math": 1.0, "format": 0.2},
        "steps": args.steps, "group_size": 8, "prompts_per_step": args.prompts_per_step, "max_tokens": 40,
        "temperature": 1.0, "learning_rate": args.learning_rate, "beta": args.beta, "seed": args.seed,
        "checkpoint_every": args.steps, "lora": {"rank": 8, "alpha": 16.0}})
    pool = VerifierPool()
    try:
        scorer = pool_scorer(pool)

        def held_out_accuracy(adapter=None) -> float:
            loaded = load_model(folder, adapter=adapter)

            def prompt_for(e):
                return build_prompt(loaded.tokenizer, (Message("user", e["prompt"]),),
                                    force_think=loaded.profile.force_think, system_prompt=loaded.profile.system_prompt)
            return evaluate(loaded.model, loaded.tokenizer, held_out, prompt_for, config, scorer)

        before = held_out_accuracy()
        t1 = time.perf_counter()
        run = train_grpo(config, scorer=scorer, log=lambda _: None)
        grpo_time = time.perf_counter() - t1
        after = held_out_accuracy(run)
    finally:
        pool.close()

    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    k = args.window
    first, last = metrics[:k], metrics[-k:]

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    print("step  reward  accuracy  kl")
    for r in metrics:
        print(f"{r['step']:4d}  {r['reward']:.3f}   {r['accuracy']:.3f}    {r['kl']:.4f}")
    r0, r1 = mean(first, "reward"), mean(last, "reward")
    a0, a1 = mean(first, "accuracy"), mean(last, "accuracy")
    print(f"reward   steps 1-{k}: {r0:.3f}  steps {len(metrics) - k + 1}-{len(metrics)}: {r1:.3f}  ratio {r1 / max(r0, 1e-9):.2f}x")
    print(f"accuracy steps 1-{k}: {a0:.3f}  steps {len(metrics) - k + 1}-{len(metrics)}: {a1:.3f}  ratio {a1 / max(a0, 1e-9):.2f}x")
    print(f"held-out greedy accuracy ({len(held_out)} additions): before {before:.2f}  after {after:.2f}")
    print(f"GRPO {len(metrics)} steps in {grpo_time:.0f} s; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Train `models/r1-nano`, the embedded default model, from scratch: the R1 recipe in miniature.

    .venv/bin/python scripts/train_nano.py [--out models/r1-nano] [--stage sft|grpo|all]

1. Cold-start SFT (full parameters) of a 1.0M-parameter Qwen2 with the byte-level tokenizer on
   generated column-by-column arithmetic traces (`workbench/train/arithmetic.py`): 3- and 4-digit
   addition and subtraction, 2-digit by 2-digit multiplication, mixed.
   Stopped early (step 800 of 3,000) on purpose: GRPO needs wrong answers to learn from.
2. GRPO (`workbench train grpo`, LoRA, fused afterwards) with the math and format verifiers, in two
   stages: prompts in the eval suite's wording, then half in the cold start's wordings and sizes.

Deterministic (seeded data, init and sampling; MLX on CPU). Run time on 2 CPU cores with OpenBLAS:
see models/r1-nano/manifest.toml ("seconds" per stage), which also has the sha256 of every file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.blas import preload_env  # noqa: E402

SIZES = dict(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=512, max_positions=1024)  # 1.0M parameters
PROFILE = """# r1-nano: a 1.0M-parameter arithmetic reasoner; greedy decoding, traces are < 250 tokens
temperature = 0.0
top_p = 1.0
max_tokens = 300
"""
WIDTH = 348  # tokens per training row: the longest prompt + trace is 348


def held_out(n: int, seed: int = 12345) -> list[dict]:
    from workbench.train.arithmetic import problem

    rng = random.Random(seed)
    return [problem(rng, "+-*"[i % 3]) for i in range(n)]


def operands(question: str) -> tuple[int, str, int]:
    a, op, b = re.fullmatch(r"(\d+)([-+*])(\d+)", question).groups()
    return int(a), op, int(b)


def suite_problems(n: int = 1000) -> set:
    """The default `arithmetic` eval suite's problems (as (a, op, b)): never in the training data."""
    from workbench.eval.suites import generate_arithmetic

    return {operands(r["question"]) for r in generate_arithmetic(n, 0)}


def accuracy(model, tokenizer, problems: list[dict], max_tokens: int = 300, diagnose: dict | None = None) -> float:
    """Greedy, batched; a boxed answer equal to the true value counts."""
    from mlx_lm.generate import batch_generate

    from workbench.engine.events import Message
    from workbench.engine.prompt import build_prompt
    from workbench.verify.answer import final_answer

    prompts = [tokenizer.encode(build_prompt(tokenizer, (Message("user", p["prompt"]),)), add_special_tokens=False)
               for p in problems]
    texts = batch_generate(model, tokenizer, prompts, max_tokens=max_tokens, completion_batch_size=len(prompts)).texts
    finals = [final_answer(t, opened=True) for t in texts]  # the one extractor: the answer after </think>
    right = [f.rule == "boxed" and f.text == p["answer"] for f, p in zip(finals, problems)]
    if diagnose is not None:  # where the wrong ones first leave the true trace: which line of the thinking
        from workbench.train.arithmetic import trace

        for t, p, ok in zip(texts, problems, right):
            if not ok:
                want = trace(p["a"], p["op"], p["b"])[0].splitlines()
                got = t.split("</think>")[0].strip().splitlines()
                line = next((i for i, (w, g) in enumerate(zip(want, got)) if w != g), min(len(want), len(got)))
                diagnose[f"{p['op']}{line}"] = diagnose.get(f"{p['op']}{line}", 0) + 1
    return sum(right) / len(problems)


def log(row: dict) -> None:
    print(json.dumps(row), flush=True)


EVAL_EVERY = int(os.environ.get("NANO_EVAL_EVERY", 250))
BUCKETS = (224, 256, 288, 320, 352)  # batch widths (a batch without multiplication fits a narrower one)


def batches(rng: random.Random, tokenizer, batch_size: int, exclude: set):
    """Endless global batches of `batch_size` rows drawn at random, padded to the smallest bucket
    width that fits (one compiled shape per bucket). Not sorted by length: rows of one length are
    one kind of problem (say, negative 4-digit differences), and batches of one kind learned far
    slower (greedy on 30 held-out problems at step 500: 0% against 57% with mixed batches)."""
    from workbench.train.arithmetic import sft_example
    from workbench.train.sft import encode_chat

    while True:
        rows = []
        while len(rows) < batch_size:
            ex = sft_example(rng)
            a, op, b = re.findall(r"(\d+)\s*([-+*×])\s*(\d+)", ex["messages"][0]["content"])[0]
            if (int(a), op.replace("×", "*"), int(b)) not in exclude:
                rows.append(encode_chat(tokenizer, ex))
        yield rows


def train_sft(folder: Path, steps: int, batch_size: int, lr: float, seed: int, log, resume: bool = False,
              stop: int | None = None) -> dict:
    """Full-parameter SFT in `folder`: from a random init, or (`resume`) from the weights already there.

    Under `mlx.launch` every rank draws the same global batches and trains on its interleaved share,
    gradients averaged: MLX runs element-wise ops on one core, so two ranks use both. `stop`: end
    after that many steps of the `steps`-step schedule (the learning rate is then still mid-decay)."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from workbench.engine.loader import load_model
    from workbench.engine.tiny import build_model, save_model, tiny_config, write_char_tokenizer
    from workbench.train.sft import make_batch, sft_loss

    group = mx.distributed.init()
    rank, size = group.rank(), group.size()
    if not resume and rank == 0:
        config = tiny_config(write_char_tokenizer(folder), **SIZES)
        save_model(folder, build_model(config, seed), config)
        (folder / "profile.toml").write_text(PROFILE)
    if size > 1:
        mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group))  # rank 0 has written the start
    config = json.loads((folder / "config.json").read_text())
    loaded = load_model(folder)
    model, tokenizer = loaded.model, loaded.tokenizer
    exclude = {(p["a"], p["op"], p["b"]) for p in held_out(300)} | suite_problems()
    rng = random.Random(f"{seed}-continued" if resume else seed)  # a continuation sees new problems
    data = batches(rng, tokenizer, batch_size, exclude)

    warmup = max(1, steps // 20)
    schedule = optim.join_schedules([optim.linear_schedule(lr / 20, lr, warmup),
                                     optim.cosine_decay(lr, steps - warmup, lr / 20)], [warmup])
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=0.01)
    loss_and_grad = nn.value_and_grad(model, sft_loss)
    state = [model.state, optimizer.state]

    def train_step(inputs, targets, mask):
        loss, grads = loss_and_grad(model, inputs, targets, mask)
        if size > 1:
            grads = nn.average_gradients(grads, group=group)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss

    step = mx.compile(train_step, inputs=state, outputs=state)  # compiles once per bucket width

    model.train()
    start, history = time.time(), []
    last = min(steps, stop or steps)
    for i in range(1, last + 1):
        rows = next(data)[rank::size]
        width = next(w for w in BUCKETS if w >= max(len(ids) for ids, _ in rows))
        loss = step(*make_batch(rows, width=width + 1))
        mx.eval(state, loss)
        if rank == 0 and (i % 25 == 0 or i == last):
            history.append({"step": i, "loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)})
            if i % EVAL_EVERY == 0:  # progress check on a separate small set; the weights so far are saved
                model.eval()
                history[-1]["wrong_from_line"] = {}
                history[-1]["accuracy"] = accuracy(model, tokenizer, held_out(30, seed=999),
                                                   diagnose=history[-1]["wrong_from_line"])
                model.train()
                save_model(folder, model, config)
            log(history[-1])
    model.eval()
    if rank == 0:
        save_model(folder, model, config)
    return {"steps": last, "schedule_steps": steps, "batch_size": batch_size, "ranks": size, "lr": lr,
            "seconds": round(time.time() - start, 1), "final_loss": history[-1]["loss"] if history else None}


def launch_sft(folder: Path, args, resume: bool) -> dict:
    """Run `train_sft` on `args.ranks` local ranks (ring over loopback), one core each; its result."""
    from workbench.distributed.local import run_ranks

    if args.ranks == 1:
        return train_sft(folder, args.sft_steps, args.batch_size, args.lr, args.seed, log, resume, args.sft_stop)
    result = folder / "sft-result.json"
    command = [sys.executable, __file__, "--sft-worker", str(folder), "--sft-steps", str(args.sft_steps),
               "--sft-stop", str(args.sft_stop or args.sft_steps),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed)]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the ranks inherit it
    code = run_ranks(command + (["--continue-sft"] if resume else []), args.ranks, 20000 + os.getpid() % 20000)
    if code:
        raise SystemExit(f"SFT ranks failed (exit code {code})")
    out = json.loads(result.read_text())
    result.unlink()
    return out


def train_grpo_stage(out: Path, steps: int, seed: int, n_eval: int, log, lr: float = 1e-4,
                     prompts_per_step: int = 4, beta: float = 0.02, iterations: int = 1,
                     temperature: float = 1.0, prompt_mix: str = "suite") -> dict:
    """LoRA-GRPO with the math and format verifiers on the SFT model, then fuse into `out`."""
    from workbench.engine.loader import load_model
    from workbench.train.checkpoint import fuse_adapters
    from workbench.train.config import GRPOConfig, LoraConfig
    from workbench.train.trainer import train_grpo

    run = out.parent / (out.name + ".grpo-run")
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    # The prompts: new problems of the target suite's kinds, in its wording (what the card measures),
    # with "mixed" every other one in the cold start's wordings and sizes (what people type in the
    # app; GRPO on those alone did not move the card); none from the eval suite or the held-out set.
    # Each later stage on the same model draws other ones (the second stage's name predates the count).
    from workbench.eval.suites import BUILT_IN, fill, generate_arithmetic

    earlier = len(list(out.glob("grpo*_metrics.jsonl")))
    name = (f"grpo-{seed}" if not earlier else f"grpo-{seed}-{steps}-{lr}" if earlier == 1
            else f"grpo-{seed}-{steps}-{lr}-{earlier + 1}")
    avoid = suite_problems() | {(p["a"], p["op"], p["b"]) for p in held_out(300)}
    rows = [{"prompt": fill(BUILT_IN["arithmetic"].prompt_template, r), "answer": r["answer"]}
            for r in generate_arithmetic(5000, name) if operands(r["question"]) not in avoid][:4000]
    if prompt_mix == "mixed":  # every other prompt in the cold start's wordings and sizes (what people type)
        from workbench.train.arithmetic import problem

        rng = random.Random(name)
        typed = (problem(rng) for _ in iter(int, 1))
        typed = ({"prompt": p["prompt"], "answer": p["answer"]} for p in typed if (p["a"], p["op"], p["b"]) not in avoid)
        rows = [row for pair in zip(rows[:2000], typed) for row in pair]
    suite = run.parent / (out.name + ".grpo-prompts.jsonl")
    suite.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = GRPOConfig(model=str(out), suite=str(suite), verifiers={"math": 1.0, "format": 0.2}, steps=steps,
                        group_size=8, prompts_per_step=prompts_per_step, iterations_per_batch=iterations,
                        max_tokens=300, temperature=temperature, top_p=1.0,
                        loss_type="grpo", beta=beta, learning_rate=lr, lr_schedule="constant",
                        lora=LoraConfig(rank=8, alpha=16.0), seed=seed, out=str(run), checkpoint_every=10)
    start = time.time()
    rows = []
    train_grpo(config, log=lambda row: (rows.append(row), log({k: round(v, 4) if isinstance(v, float) else v
                                                               for k, v in row.items()})))
    seconds = round(time.time() - start, 1)
    fused = out.parent / (out.name + ".fused-tmp")
    shutil.rmtree(fused, ignore_errors=True)
    fuse_adapters(run, str(out), fused)
    loaded = load_model(fused)
    result = {"steps": steps, "seconds": seconds, "config": {k: v for k, v in config.to_dict().items() if k != "out"},
              "reward_first_5": sum(r["reward"] for r in rows[:5]) / 5,
              "reward_last_5": sum(r["reward"] for r in rows[-5:]) / 5,
              "held_out_accuracy": accuracy(loaded.model, loaded.tokenizer, held_out(n_eval)),
              "held_out_problems": n_eval}
    # The fused weights replace the SFT weights; tokenizer, config and profile stay as they were. The old
    # manifest.toml no longer describes them (the loader would refuse them): main() writes a new one.
    (out / "manifest.toml").unlink(missing_ok=True)
    shutil.copy(fused / "model.safetensors", out / "model.safetensors")
    (run / "metrics.jsonl").replace(out / f"grpo{len(list(out.glob('grpo*_metrics.jsonl'))) + 1}_metrics.jsonl")
    shutil.rmtree(fused)
    shutil.rmtree(run)
    suite.unlink()
    return result


def report_card(folder: Path, n: int, temperature: float | None = None, samples: int = 1) -> dict:
    """`workbench eval` on the default `arithmetic` suite (its first n problems, never trained on);
    the card lands in folder/evals/, bound to these weights. Greedy (the profile's) by default;
    with `temperature`, pass@1 averaged over `samples` draws, where GRPO's sharpening shows."""
    extra = [] if temperature is None else ["--temp", str(temperature), "--samples", str(samples)]
    done = subprocess.run([sys.executable, "-m", "workbench", "eval", "--model", str(folder), "--suite", "arithmetic",
                           "--limit", str(n), "--json", *extra], capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["workbench eval failed"])[-1]}
    card = json.loads(done.stdout.strip().splitlines()[-1])
    return {"suite": "arithmetic", "temperature": "profile (greedy)" if temperature is None else temperature,
            "samples": samples, "accuracy": card["accuracy"], "ci95": card["ci95"], "n": card["n"],
            "model_sha256": card["model_sha256"], "vs_before": versus_before(folder, card)}


def versus_before(folder: Path, card: dict) -> dict | None:
    """The new card against the latest card of other weights in folder/evals on the same problems
    and sampling (the stage before): problem by problem, with the sign test's p-value."""
    from workbench.eval.card import paired_difference

    same = lambda c: all(c.get(k) == card.get(k) for k in ("suite_sha256", "sampling", "samples"))  # noqa: E731
    for path in sorted((folder / "evals").glob("*.json"), reverse=True):
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not a card we can read: the manifest is still written, without it
        if before.get("model_sha256") != card["model_sha256"] and same(before):
            return {"model_sha256": before["model_sha256"],
                    **{k: v for k, v in paired_difference(before, card).items() if k != "problems"}}
    return None


def report_cards(folder: Path, n: int) -> dict:
    """Greedy on n problems, and sampled at temperature 1.0 (2 draws each) on the first n * 2 // 3."""
    return {"greedy": report_card(folder, n), "sampled": report_card(folder, n * 2 // 3, 1.0, 2)}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(d: dict, prefix: str = "") -> str:
    """Enough TOML for the manifest: scalars, lists, nested tables (lists of tables as [[name]])."""
    key = lambda k: k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)  # noqa: E731 - "config.json"
    lines = [f"{key(k)} = {toml_value(v)}" for k, v in d.items() if v is not None and not isinstance(v, dict)
             and not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            lines += ["", f"[{name}]", to_toml(v, name + ".")]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                lines += ["", f"[[{name}]]", to_toml(item, name + ".")]
    return "\n".join(line for line in lines if line != "")


def write_manifest(folder: Path, extra: dict) -> None:
    """manifest.toml: how the model was made and the sha256 of every file (TOML: not a model file for
    report cards; the loader and `workbench models verify` check its [files] table)."""
    from workbench.models.identity import file_sha256

    files = {p.name: file_sha256(p, fresh=True) for p in sorted(folder.iterdir())
             if p.is_file() and p.name != "manifest.toml"}
    (folder / "manifest.toml").write_text(to_toml({**extra, "files": files}) + "\n")


def read_manifest(folder: Path) -> dict:
    import tomllib

    manifest = tomllib.loads((folder / "manifest.toml").read_text())
    manifest.pop("files", None)
    return manifest


def prompt_mixes(text: str) -> str:
    if not text or any(mix not in ("suite", "mixed") for mix in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of suite and mixed, got {text!r}")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "models" / "r1-nano"))
    parser.add_argument("--stage", choices=["sft", "grpo", "all", "none"], default="all")
    parser.add_argument("--sft-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=48, help="SFT rows per step over all ranks")
    parser.add_argument("--sft-stop", type=int, default=800,
                        help="end SFT after this many steps of the --sft-steps schedule (default 800, the "
                             "shipped recipe; also bounds a --continue-sft phase; 0: run it all)")
    parser.add_argument("--ranks", type=int, default=2, help="local SFT ranks (data parallel; one core each)")
    parser.add_argument("--sft-worker", help=argparse.SUPPRESS)  # one rank of launch_sft
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--continue-sft", action="store_true", help="more SFT steps on the model in --out")
    parser.add_argument("--grpo-steps", type=int, default=80)
    parser.add_argument("--grpo-lr", type=float, default=5e-4)
    parser.add_argument("--grpo-prompts", type=int, default=16, help="prompts per GRPO step (G = 8 each)")
    parser.add_argument("--grpo-beta", type=float, default=0.04, help="KL coefficient")
    parser.add_argument("--grpo-iterations", type=int, default=1, help="updates per generated batch (mu)")
    parser.add_argument("--grpo-temperature", type=float, default=1.0, help="sampling temperature of the rollouts")
    parser.add_argument("--grpo-prompt-mix", type=prompt_mixes, default="suite,mixed",
                        help="one GRPO stage per comma-separated entry, in order: 'suite' (prompts in the eval "
                             "suite's wording and sizes) or 'mixed' (every other one in the cold start's "
                             "wordings and sizes)")
    parser.add_argument("--eval", type=int, default=300, help="held-out problems to measure accuracy on")
    args = parser.parse_args()
    if args.eval < 1:  # every stage measures itself: a run without a measurement is not worth its hours
        parser.error("--eval must be at least 1 (held-out problems measured after each stage)")
    env = preload_env(os.environ)  # OpenBLAS: ~30x faster matmul than MLX's CPU fallback
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    import mlx.core as mx

    mx.random.seed(args.seed)
    out = Path(args.out)
    if args.sft_worker:
        folder = Path(args.sft_worker)
        result = train_sft(folder, args.sft_steps, args.batch_size, args.lr, args.seed, log, args.continue_sft,
                           args.sft_stop)
        if mx.distributed.init().rank() == 0:
            (folder / "sft-result.json").write_text(json.dumps(result))
        return 0
    manifest = {"command": "python scripts/train_nano.py " + " ".join(sys.argv[1:]), "seed": args.seed}
    if args.continue_sft:  # more SFT steps on the model in --out (a second phase after a short first run)
        manifest = read_manifest(out)
        (out / "manifest.toml").unlink()  # the weights change: written again at the end
        phase = launch_sft(out, args, resume=True)
        from workbench.engine.loader import load_model

        loaded = load_model(out)
        phase["held_out_accuracy"] = accuracy(loaded.model, loaded.tokenizer, held_out(args.eval))
        phase["held_out_problems"] = args.eval
        phase["report_card"] = report_cards(out, args.eval)
        phase["command"] = "python scripts/train_nano.py " + " ".join(sys.argv[1:])
        manifest.setdefault("sft_continued", []).append(phase)
        log(phase)
        args.stage = "none"
    if args.stage in ("sft", "all"):
        work = out.parent / (out.name + ".sft-tmp")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        manifest["sft"] = launch_sft(work, args, resume=False)
        from workbench.engine.loader import load_model

        loaded = load_model(work)
        manifest["sft"]["held_out_accuracy"] = accuracy(loaded.model, loaded.tokenizer, held_out(args.eval))
        manifest["sft"]["held_out_problems"] = args.eval
        manifest["sft"]["report_card"] = report_cards(work, args.eval)
        log(manifest["sft"])
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    if args.stage in ("grpo", "all"):
        manifest = read_manifest(out) if args.stage == "grpo" else manifest
        for mix in args.grpo_prompt_mix.split(","):  # GRPO stages in order, each on the one before
            stage = train_grpo_stage(out, args.grpo_steps, args.seed, args.eval, log, args.grpo_lr, args.grpo_prompts,
                                     args.grpo_beta, args.grpo_iterations, args.grpo_temperature, mix)
            stage["report_card"] = report_cards(out, args.eval)
            stage["command"] = "python scripts/train_nano.py " + " ".join(sys.argv[1:])
            manifest.setdefault("grpo", []).append(stage)
            write_manifest(out, manifest)  # a stage's result is kept if a later one is stopped
            log(stage)
    write_manifest(out, manifest)
    return 0


if __name__ == "__main__":
    sys.exit(main())

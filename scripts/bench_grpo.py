"""Seconds per GRPO step: our trainer vs mlx-lm-lora's GRPO trainer, same model, G, length, batch.

    .venv/bin/python scripts/bench_grpo.py [--model r1-nano] [--steps 5] [--group-size 8] [--max-tokens 128]

mlx-lm-lora is installed from PyPI into its own venv under /tmp (created on first use; never
vendored). Both sides: LoRA rank 8 on every layer, G completions for each of `--batch` prompts
per step, temperature 1.0, beta 0.04, the same arithmetic prompts. Ours scores with the real
verifiers (math, format) in the verifier pool; theirs with its built-in regex rewards. Step 1
(warm-up) is left out; the median of the rest is reported, with the mean completion length of
each side (a side that stops earlier does less work). Prints one JSON line and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV = Path("/tmp/bench-mlx-lm-lora/venv")

THEIRS = r'''
import json, sys, time
import mlx.core as mx, mlx.optimizers as optim
from mlx_lm import load
from mlx_lm.tuner.utils import linear_to_lora_layers
from mlx_lm_lora.trainer.grpo_trainer import GRPOTrainingArgs, train_grpo
from mlx_lm_lora.trainer.grpo_reward_functions import r1_accuracy_reward_func, r1_soft_format_reward_func

cfg = json.loads(sys.argv[1])
mx.random.seed(0)
model, tok = load(cfg["model"])
ref, _ = load(cfg["model"])  # mlx-lm-lora's reference policy is a second copy of the model
model.freeze()
linear_to_lora_layers(model, len(model.layers), {"rank": 8, "scale": 2.0, "dropout": 0.0})
data = [(tok.encode(p, add_special_tokens=False), tok.encode(a, add_special_tokens=False), p, a) for p, a in cfg["rows"]]
times, lengths = [], []

class Clock:
    def on_train_loss_report(self, info):
        times.append(time.perf_counter())
        lengths.append(info.get("train_average_generated_tokens", 0))
    def on_val_loss_report(self, info):
        pass

args = GRPOTrainingArgs(batch_size=cfg["batch"], iters=cfg["steps"], group_size=cfg["G"], beta=0.04,
                        epsilon=0.2, max_completion_length=cfg["max_tokens"], temperature=1.0, top_p=1.0, top_k=0,
                        steps_per_report=1, steps_per_eval=10**9, steps_per_save=10**9, max_seq_length=1024,
                        adapter_file=cfg["adapter_file"])
start = time.perf_counter()
train_grpo(model=model, ref_model=ref, tokenizer=tok, optimizer=optim.Adam(learning_rate=1e-5), train_dataset=data,
           val_dataset=None, reward_funcs=[r1_accuracy_reward_func, r1_soft_format_reward_func], args=args,
           training_callback=Clock())
steps = [b - a for a, b in zip([start] + times[:-1], times)]
print("RESULT " + json.dumps({"step_times": steps, "lengths": lengths}))
'''


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} with mlx-lm-lora from PyPI ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mlx[cpu]" if sys.platform == "linux" else "mlx",
                        "mlx-lm-lora"], check=True)
    return python


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="r1-nano")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2, help="prompts per step")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    from workbench.blas import preload_env

    env = preload_env(os.environ)
    if env is not None:
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    from workbench.models.local import resolve_model
    from workbench.train.config import GRPOConfig
    from workbench.train.data import load_examples
    from workbench.train.trainer import train_grpo

    folder = resolve_model(args.model)
    python = ensure_venv()
    work = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    examples = load_examples("arithmetic", 200, 0, "train")
    suite = work / "suite.jsonl"
    suite.write_text("".join(json.dumps({"prompt": e["prompt"], "answer": e["answer"]}) + "\n" for e in examples))

    config = GRPOConfig(model=str(folder), suite=str(suite), steps=args.steps, group_size=args.group_size,
                        prompts_per_step=args.batch, max_tokens=args.max_tokens, temperature=1.0, top_p=1.0,
                        beta=0.04, learning_rate=1e-5, out=str(work / "ours"), checkpoint_every=10**9)
    rows = []
    train_grpo(config, log=rows.append)
    ours = [r["step_time"] for r in rows[1:]]
    ours_len = statistics.mean(r["completion_length"] for r in rows)

    # Their prompts: the same chat-templated text ours sends (ending in "<think>\n").
    from workbench.engine.events import Message
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt

    tok = load_model(folder).tokenizer
    their_rows = [(build_prompt(tok, (Message("user", e["prompt"]),)), e["answer"]) for e in examples]
    payload = json.dumps({"model": str(folder), "rows": their_rows, "steps": args.steps, "G": args.group_size,
                          "batch": args.batch, "max_tokens": args.max_tokens,
                          "adapter_file": str(work / "theirs.safetensors")})
    script = work / "theirs.py"
    script.write_text(THEIRS)
    proc = subprocess.run([str(python), str(script), payload], capture_output=True, text=True, env=env or os.environ,
                          cwd=work)
    result = next((json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")), None)
    if result is None:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        return 1
    theirs = result["step_times"][1:]
    out = {
        "model": folder.name, "G": args.group_size, "prompts_per_step": args.batch, "max_tokens": args.max_tokens,
        "steps_timed": len(ours), "ours_s_per_step": round(statistics.median(ours), 3),
        "mlx_lm_lora_s_per_step": round(statistics.median(theirs), 3),
        "ours_mean_completion_tokens": round(ours_len, 1),
        "mlx_lm_lora_mean_completion_tokens": round(statistics.mean(result["lengths"]), 1) if result["lengths"] else None,
        "load_average": os.getloadavg()[0],
    }
    out["speedup"] = round(out["mlx_lm_lora_s_per_step"] / out["ours_s_per_step"], 2)
    print(json.dumps(out))
    print(f"ours {out['ours_s_per_step']} s/step vs mlx-lm-lora {out['mlx_lm_lora_s_per_step']} s/step: "
          f"{out['speedup']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

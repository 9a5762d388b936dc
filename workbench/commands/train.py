"""`workbench train grpo|sft|rejection|fuse|plot`: the three stages of the R1 recipe, and tools."""

from __future__ import annotations

import argparse
import sys

from workbench.commands.arguments import add_engine_arguments, add_model_arguments


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    grpo = sub.add_parser("grpo", help="LoRA-GRPO against verifiers")
    grpo.add_argument("--model", "-m", default=None, help="model folder or name (default: r1-nano)")
    grpo.add_argument("--suite", default=None, help="'arithmetic' or a JSONL file of {prompt, answer} rows")
    grpo.add_argument("--verifiers", default=None, help="weighted verifiers, e.g. math,format or math:1,format:0.2")
    grpo.add_argument("--steps", type=int, default=None)
    grpo.add_argument("--group-size", type=int, default=None, help="completions per prompt (G)")
    grpo.add_argument("--prompts-per-step", type=int, default=None, help="groups per optimizer step")
    grpo.add_argument("--max-tokens", type=int, default=None, help="max completion length")
    grpo.add_argument("--loss-type", choices=["grpo", "dr_grpo", "dapo"], default=None)
    grpo.add_argument("--beta", type=float, default=None, help="KL coefficient (0 allowed)")
    grpo.add_argument("--learning-rate", "--lr", type=float, default=None)
    grpo.add_argument("--seed", type=int, default=None)
    grpo.add_argument("--eval-every", type=int, default=None, help="held-out evaluation every N steps")
    grpo.add_argument("--checkpoint-every", type=int, default=None)
    grpo.add_argument("--out", default=None, help="run folder (default runs/<name>/)")
    grpo.add_argument("--name", default=None, help="run name (the folder under runs/)")
    grpo.add_argument("--config", default=None, help="a TOML file of GRPOConfig settings (flags override it)")
    grpo.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    where = grpo.add_mutually_exclusive_group()
    where.add_argument("--hostfile", default=None, help="data parallel over the hosts of `workbench cluster init`")
    where.add_argument("--local-ranks", type=int, default=None, help="data parallel over N ranks on this machine")
    grpo.add_argument("--deadline", type=float, default=30.0,
                      help="seconds a rank may wait for the others beyond its own work (then the run ends)")
    grpo.add_argument("--starting-port", type=int, default=32323, help="first port of the ring backend")
    grpo.add_argument("--python", default=sys.executable, help="the workbench's Python on every host")
    grpo.add_argument("--rank-of", default=None, help=argparse.SUPPRESS)  # set by the launch: the run's config
    grpo.add_argument("--hosts", default=None, help=argparse.SUPPRESS)

    sft = sub.add_parser("sft", help="supervised fine-tuning (LoRA) on JSONL chats with thinking")
    sft.add_argument("data", help="JSONL: {\"messages\": [..., {\"role\": \"assistant\", \"content\": \"<think>...</think>answer\"}]}")
    sft.add_argument("--model", "-m", default=None)
    sft.add_argument("--steps", type=int, default=None)
    sft.add_argument("--batch-size", type=int, default=None)
    sft.add_argument("--learning-rate", "--lr", type=float, default=None)
    sft.add_argument("--seed", type=int, default=None)
    sft.add_argument("--out", default=None)
    sft.add_argument("--name", default=None)
    sft.add_argument("--config", default=None, help="a TOML file of SFTConfig settings")

    rej = sub.add_parser("rejection", help="sample K per prompt, keep the verified ones, write an SFT file")
    add_engine_arguments(rej)
    add_model_arguments(rej)
    rej.add_argument("--suite", default="arithmetic")
    rej.add_argument("--verifiers", default="math,format", help="all must score 1 for a completion to be kept")
    rej.add_argument("-k", type=int, default=4, help="samples per prompt")
    rej.add_argument("--limit", type=int, default=64, help="prompts")
    rej.add_argument("--max-tokens", type=int, default=512)
    rej.add_argument("--temp", type=float, default=None,
                     help="temperature (default: the profile's, 1.0 if it is greedy; with --endpoint, the server's)")
    rej.add_argument("--seed", type=int, default=0)
    rej.add_argument("--out", required=True, help="the JSONL file to write (chats for `train sft`)")

    fuse = sub.add_parser("fuse", help="merge LoRA adapters into a new model folder")
    fuse.add_argument("adapter", help="adapter folder (adapters.safetensors + adapter_config.json)")
    fuse.add_argument("--model", "-m", default=None, help="base model (default: the one the adapter names)")
    fuse.add_argument("--out", required=True, help="the fused model folder")

    plot = sub.add_parser("plot", help="draw a run's curves in the terminal and as a PNG")
    plot.add_argument("run", help="run folder (with metrics.jsonl)")
    plot.add_argument("--metrics", default="reward,accuracy,kl", help="comma-separated metric names")
    plot.add_argument("--png", default=None, help="PNG path (default RUN/curves.png)")
    plot.add_argument("--no-terminal", action="store_true")


def _overrides(args, names) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def main(args) -> int:
    return {"grpo": grpo, "sft": sft, "rejection": rejection, "fuse": fuse, "plot": plot}[args.stage](args)


def grpo(args) -> int:
    from workbench.train.config import GRPOConfig, parse_verifiers, read_toml
    from workbench.train.trainer import train_grpo

    if args.rank_of:  # one rank of launch_grpo: the launcher's config, word for word
        import base64
        import json

        import mlx.core as mx

        config = GRPOConfig.from_dict(json.loads(base64.b64decode(args.rank_of)))
        hosts = args.hosts.split(",")
        # Only rank 0 talks: a rank's own mx.distributed.init() comes first, inside train_grpo.
        log = _progress(config.steps)
        train_grpo(config, resume=args.resume, log=log, hosts=hosts, deadline=args.deadline)
        if mx.distributed.init().rank() == 0:
            print(f"adapters: {config.out}  (workbench run --adapter {config.out} ...)")
        return 0
    values = read_toml(args.config) if args.config else {}
    values.update(_overrides(args, ["model", "suite", "steps", "group_size", "prompts_per_step", "max_tokens",
                                    "loss_type", "beta", "learning_rate", "seed", "eval_every", "checkpoint_every",
                                    "out", "name"]))
    if args.verifiers:
        values["verifiers"] = parse_verifiers(args.verifiers)
    if args.resume:
        from pathlib import Path

        if not args.out:
            from workbench.errors import UserError

            raise UserError("--resume needs --out RUN (the run folder to continue)")
        saved = Path(args.out) / "config.json"
        if saved.exists():  # the run's own settings, then anything given again on the command line
            import json

            values = {**json.loads(saved.read_text()), **values}
    config = GRPOConfig.from_dict(values)
    if args.hostfile or args.local_ranks is not None:
        return launch_grpo(args, config)
    run = train_grpo(config, resume=args.resume, log=_progress(config.steps))
    print(f"adapters: {run}  (workbench run --adapter {run} ...)")
    return 0


def launch_grpo(args, config) -> int:
    """Start every rank as `cluster serve` does (mlx.launch for a hostfile); each runs this config, rank 0 writes."""
    import base64
    import json
    from pathlib import Path

    from workbench.commands.cluster import check_local_ranks, launcher, run_ranks
    from workbench.distributed.hostfile import Hostfile
    from workbench.models.local import resolve_model
    from workbench.train.trainer import run_dir

    check_local_ranks(args)
    config.check()
    hostfile = Hostfile.read(Path(args.hostfile)) if args.hostfile else None
    # Every rank must see the same paths (and one run folder name): make them absolute here.
    config.model = str(resolve_model(config.model).resolve())
    config.out = str(run_dir(config).resolve())
    if Path(config.suite).is_file():
        config.suite = str(Path(config.suite).resolve())
    command, names = launcher(args, hostfile)
    encoded = base64.b64encode(json.dumps(config.to_dict()).encode()).decode()  # safe through ssh quoting
    command += [args.python, "-m", "workbench", "train", "grpo", "--rank-of", encoded, "--hosts", ",".join(names),
                "--deadline", str(args.deadline)] + (["--resume"] if args.resume else [])
    return run_ranks(args, command)


def _progress(total: int):
    """A one-line progress bar on a terminal; plain lines otherwise."""
    def log(row) -> None:
        if not isinstance(row, dict):
            print(row, file=sys.stderr)
            return
        done = int(30 * row["step"] / max(total, 1))
        line = (f"step {row['step']}/{total} [{'#' * done}{'.' * (30 - done)}] reward {row['reward']:.3f} "
                f"acc {row['accuracy']:.2f} kl {row['kl']:.4f} len {row['completion_length']:.0f} "
                f"{row['step_time']:.1f}s/step" + (f" eval {row['eval_accuracy']:.2f}" if "eval_accuracy" in row else ""))
        end = "\r" if sys.stderr.isatty() and row["step"] < total else "\n"
        print(line, end=end, file=sys.stderr, flush=True)
    return log


def sft(args) -> int:
    from workbench.train.config import SFTConfig, read_toml
    from workbench.train.sft import train_sft

    values = read_toml(args.config) if args.config else {}
    values.update(_overrides(args, ["model", "steps", "batch_size", "learning_rate", "seed", "out", "name"]))
    values["data"] = args.data
    run = train_sft(SFTConfig.from_dict(values))
    print(f"adapters: {run}")
    return 0


def rejection(args) -> int:
    from workbench.engine.choose import open_engine
    from workbench.train.config import parse_verifiers
    from workbench.train.rejection import rejection_sample

    def progress(done: int, total: int, kept: int) -> None:
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        print(f"prompt {done}/{total}: {kept} verified", end=end, file=sys.stderr, flush=True)

    engine = open_engine(args.endpoint)
    try:
        kept, total = rejection_sample(engine, args.suite, list(parse_verifiers(args.verifiers)), args.k, args.limit,
                                       args.max_tokens, args.temp, args.seed, args.out, args.model, args.adapter,
                                       args.trust_remote_code, on_prompt=progress)
    finally:
        engine.close()
    print(f"kept {kept} of {total} completions -> {args.out}")
    return 0


def fuse(args) -> int:
    from workbench.train.checkpoint import fuse_adapters

    out = fuse_adapters(args.adapter, args.model, args.out)
    print(f"fused model: {out}")
    return 0


def plot(args) -> int:
    from workbench.train.plot import plot_run

    png = plot_run(args.run, [m.strip() for m in args.metrics.split(",") if m.strip()], args.png,
                   terminal=not args.no_terminal)
    print(f"png: {png}")
    return 0

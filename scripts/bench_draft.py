"""Speculative decoding: decode tokens/s with a draft model versus without (the baseline), in one run,
with the draft's acceptance, and a check that greedy output is the same token for token.

A draft only pays when it guesses what the model would say, and random weights guess nothing. So two drafts:
- `random`: an independent random 1-layer model with the same tokenizer: acceptance near zero, the cost
  of drafting alone (the worst case);
- `truncated`: the target's own first layer (embedding, layer 0, norm, tied head). The target is built so
  that its later layers add little to the residual stream (their output projections scaled by
  `--damp`): it still computes all its layers (its cost is unchanged) but says nearly what its first
  layer says, as a big distill nearly says what a small one of its family says. Acceptance is high by
  construction; the speed-up shows what drafting buys when the draft is good.
Both run the engine's own path (`generate.stream_prompt` with a `decode.Decoder`); cases alternate over
`--repeats` rounds; medians.

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libopenblas.so.0 .venv/bin/python scripts/bench_draft.py \\
        [--hidden 1024 --layers 16 --damp 0.01 --tokens 100 --draft-tokens 3 --repeats 2]
"""

import argparse
import json
import shutil
import statistics
import tempfile
from pathlib import Path


def wandering(folder: Path) -> dict:
    """The folder's weights doubled, so greedy decoding wanders instead of repeating one token (as small
    random weights do, which any draft would then guess)."""
    import mlx.core as mx

    weights = {k: v * 2 for k, v in mx.load(str(folder / "model.safetensors")).items()}
    mx.save_safetensors(str(folder / "model.safetensors"), weights, metadata={"format": "mlx"})
    return weights


def build_pair(root: Path, hidden: int, layers: int, damp: float) -> tuple[Path, Path, Path]:
    """(target, truncated draft, random draft) folders sharing one tokenizer."""
    import mlx.core as mx

    from workbench.engine.tiny import make_bench_model

    target = make_bench_model(root / "target", hidden=hidden, layers=layers)
    weights = wandering(target)
    for name in list(weights):  # later layers: a small residual contribution
        if name.startswith("model.layers.") and int(name.split(".")[2]) > 0 and name.endswith(
                ("o_proj.weight", "down_proj.weight")):
            weights[name] = weights[name] * damp
    mx.save_safetensors(str(target / "model.safetensors"), weights, metadata={"format": "mlx"})
    truncated = root / "draft-truncated"
    shutil.copytree(target, truncated)
    config = json.loads((target / "config.json").read_text())
    (truncated / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 1}))
    kept = {k: v for k, v in weights.items() if not k.startswith("model.layers.") or k.split(".")[2] == "0"}
    mx.save_safetensors(str(truncated / "model.safetensors"), kept, metadata={"format": "mlx"})
    random_draft = make_bench_model(root / "draft-random", hidden=hidden, layers=1, seed=7)
    wandering(random_draft)
    return target, truncated, random_draft


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--damp", type=float, default=0.01, help="scale of the later layers' output projections")
    ap.add_argument("--tokens", type=int, default=100, help="tokens decoded per run")
    ap.add_argument("--draft-tokens", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from workbench.engine.decode import Decoder, Draft
    from workbench.engine.events import Done, Sampling
    from workbench.engine.generate import PromptCache, encode_prompt, stream_prompt
    from workbench.engine.loader import load_model

    target_dir, truncated_dir, random_dir = build_pair(Path(tempfile.mkdtemp()), args.hidden, args.layers, args.damp)
    target = load_model(target_dir)
    drafts = {"truncated": load_model(truncated_dir), "random": load_model(random_dir)}
    prompt = "Please reason step by step: what is 1234+5678? First, add the ones: 4 plus 8 is 12. "
    sampling = Sampling(temperature=0.0, max_tokens=args.tokens)

    def run(draft_name: str | None):
        decoder = Decoder()
        if draft_name:
            decoder = Decoder(draft=Draft(target.model, drafts[draft_name].model, draft_name),
                              draft_tokens=args.draft_tokens)
        events = list(stream_prompt(target.model, target.tokenizer, prompt, sampling, cache=PromptCache(),
                                    decoder=decoder))
        done = events[-1]
        assert isinstance(done, Done), done
        text = "".join(getattr(e, "text", "") for e in events)
        return done.stats, text

    run(None)  # warm up
    cases = (None, "random", "truncated")
    stats: dict = {c: [] for c in cases}
    texts: dict = {}
    for r in range(args.repeats):
        for case in cases if r % 2 == 0 else cases[::-1]:
            s, text = run(case)
            stats[case].append(s)
            texts.setdefault(case, text)
    assert texts["random"] == texts[None] and texts["truncated"] == texts[None], "greedy output changed with a draft"
    base = statistics.median(s.generation_tps for s in stats[None])
    print(f"target: random bench model, hidden {args.hidden} x {args.layers} layers (later layers damped x{args.damp}); "
          f"drafts 1 layer; {args.tokens} tokens decoded after a {len(encode_prompt(target.tokenizer, prompt))}-token "
          f"prompt; {args.draft_tokens} draft tokens per step; {args.repeats} rounds, medians")
    print(f"no draft:         {base:6.1f} tok/s")
    for case in ("random", "truncated"):
        tps = statistics.median(s.generation_tps for s in stats[case])
        accepted = sum(s.draft_accepted for s in stats[case]) / max(1, sum(s.draft_proposed for s in stats[case]))
        print(f"draft {case:10s}: {tps:6.1f} tok/s ({tps / base:.2f}x), {accepted:.0%} of drafted tokens accepted")
    print(f"greedy output: identical with and without each draft ({stats[None][0].generated_tokens} tokens, "
          f"{len(set(texts[None]))} different characters)")


if __name__ == "__main__":
    main()

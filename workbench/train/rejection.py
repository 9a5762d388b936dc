"""`workbench train rejection`: sample K completions per prompt, keep the verified ones, write SFT chats.

The second stage of the R1 recipe: the kept chats feed `workbench train sft`. A completion is kept
when every named verifier gives it a full score; each verifier runs once per completion.
"""

from __future__ import annotations

import json
from pathlib import Path


def rejection_sample(model_name: str, suite: str, verifiers: list[str], k: int, limit: int, max_tokens: int,
                     temperature: float | None, seed: int, out: str | Path) -> tuple[int, int]:
    """Returns (kept, sampled). Writes chats (`{"messages": [user, assistant]}`) to `out`."""
    import mlx.core as mx

    from workbench.engine.events import Message
    from workbench.engine.loader import load_model
    from workbench.engine.prompt import build_prompt, opens_thinking
    from workbench.models.local import resolve_model
    from workbench.train.data import load_examples
    from workbench.train.rollout import sample_group
    from workbench.verify import VerifierPool

    loaded = load_model(resolve_model(model_name))
    tokenizer, profile = loaded.tokenizer, loaded.profile
    temp = temperature if temperature is not None else (profile.temperature or 1.0)
    mx.random.seed(seed)
    examples = load_examples(suite, limit, seed, "train")[:limit]
    kept, sampled = [], 0
    with VerifierPool() as pool:
        for example in examples:
            prompt = build_prompt(tokenizer, (Message("user", example["prompt"]),), force_think=profile.force_think,
                                  system_prompt=profile.system_prompt)
            ids = tokenizer.encode(prompt, add_special_tokens=False)
            group = sample_group(loaded.model, ids, k, max_tokens, tokenizer.eos_token_ids, temp, profile.top_p or 1.0)
            texts = [tokenizer.decode(c) for c, done in zip(group.completions, group.finished)]
            sampled += len(texts)
            verdict_example = {**example, "think_in_prompt": opens_thinking(prompt)}
            passed = [True] * len(texts)
            for name in verifiers:
                verdicts = pool.map(name, [(t, verdict_example) for t in texts])
                passed = [p and v.correct for p, v in zip(passed, verdicts)]
            opened = "<think>\n" if opens_thinking(prompt) else ""
            kept += [{"messages": [{"role": "user", "content": example["prompt"]},
                                   {"role": "assistant", "content": opened + t}]}
                     for t, ok, done in zip(texts, passed, group.finished) if ok and done]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("".join(json.dumps(row) + "\n" for row in kept), encoding="utf-8")
    return len(kept), sampled

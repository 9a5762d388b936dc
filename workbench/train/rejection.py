"""`workbench train rejection`: sample K completions per prompt, keep the verified ones, write SFT chats.

The second stage of the R1 recipe: the kept chats feed `workbench train sft`. A completion is kept
when it ended on its own (not cut at the token limit) and every named verifier gives it a full score;
each verifier runs once per completion. Any engine samples: a local model, or a bigger one served
elsewhere (`--endpoint`, e.g. `workbench cluster serve`): distillation in miniature. Every chat is
written as soon as its prompt is done, so an interrupted run keeps what it verified.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from workbench.engine.protocol import Engine
from workbench.errors import UserError


def rejection_sample(engine: Engine, suite: str, verifiers: list[str], k: int, limit: int, max_tokens: int,
                     temperature: float | None, seed: int, out: str | Path, model: str | None = None,
                     adapter: str | None = None, trust_remote_code: bool = False,
                     on_prompt: Callable[[int, int, int], None] = lambda done, total, kept: None) -> tuple[int, int]:
    """Returns (kept, sampled). Writes chats (`{"messages": [user, assistant]}`) to `out`.

    `temperature` None: the model profile's (1.0 when the profile is greedy: K equal samples teach
    nothing); for a served model whose profile we cannot see, the server's default.
    `on_prompt(done, total, kept)` after each prompt."""
    from workbench.engine.events import ChatRequest, Done, Failed, Sampling
    from workbench.engine.profiles import Profile
    from workbench.eval.runner import completion_text
    from workbench.train.data import load_examples
    from workbench.verify import VerifierPool

    *_, loaded = engine.load(model, adapter, trust_remote_code).collect()
    if isinstance(loaded, Failed):
        raise UserError(loaded.message)
    info = loaded.info
    profile = Profile.from_dict(info.profile or {})
    if temperature is None and info.profile:
        temperature = profile.temperature or 1.0
    top_p = profile.top_p if info.profile else None
    examples = load_examples(suite, limit, seed, "train")[:limit]
    opened = "<think>\n" if profile.force_think else ""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept, sampled = 0, 0
    with VerifierPool() as pool, open(path, "w", encoding="utf-8") as written:
        for index, example in enumerate(examples):
            texts = []
            for j in range(k):
                sampling = Sampling(temperature, top_p, max_tokens, seed * 1_000_003 + index * k + j)
                thinking, answer, end = engine.generate(ChatRequest.single(example["prompt"], sampling)).collect()
                if not isinstance(end, Done):
                    raise UserError(f"sampling stopped at prompt {index + 1} of {len(examples)}: "
                                    f"{getattr(end, 'message', end)} ({kept} verified chats kept in {path})")
                sampled += 1
                if end.stats.finish_reason == "stop":  # a completion cut at max_tokens is not a whole trace
                    texts.append(completion_text(thinking, answer, end.stats.thinking_closed))
            verdict_example = {**example, "think_in_prompt": profile.force_think}
            passed = [True] * len(texts)
            for name in verifiers:
                verdicts = pool.map(name, [(t, verdict_example) for t in texts])
                passed = [p and v.correct for p, v in zip(passed, verdicts)]
            rows = [{"messages": [{"role": "user", "content": example["prompt"]},
                                  {"role": "assistant", "content": opened + t}]} for t, ok in zip(texts, passed) if ok]
            written.write("".join(json.dumps(row) + "\n" for row in rows))
            written.flush()
            kept += len(rows)
            on_prompt(index + 1, len(examples), kept)
    return kept, sampled

"""One prompt on several variants (models, adapters, temperatures, seeds), recorded as one "compare"
session: the library behind `workbench compare` and the app's compare screen."""

from __future__ import annotations

import contextlib
import itertools

from workbench.engine.events import ChatRequest, Failed, Message, Sampling
from workbench.inspect.consistency import verify_against
from workbench.sessions.recorder import Recorder


def variants(models=None, adapters=None, temps=None, samples: int = 1, seed: int | None = None) -> list[dict]:
    """Every combination of the given models, adapters ("none" or None: the base model) and temperatures,
    each `samples` times with seeds seed, seed+1, ...; labels name only the axes that vary."""
    models, temps = models or [None], temps or [None]
    adapters = [None if a is None or str(a).lower() in ("none", "") else a for a in adapters or [None]]
    samples = max(1, samples)
    seeds = [None] if samples == 1 and seed is None else [(seed or 0) + i for i in range(samples)]
    out = []
    for model, adapter, temp, one_seed in itertools.product(models, adapters, temps, seeds):
        label = [f"{k}={'none' if v is None else v}" for k, v, axis in (
            ("model", model, models), ("adapter", adapter, adapters), ("temp", temp, temps)) if len(axis) > 1]
        if samples > 1:
            label.append(f"seed={one_seed}")
        out.append({"label": " ".join(label) or "default", "model": model, "adapter": adapter,
                    "temperature": temp, "seed": one_seed})
    return out


def run_variants(engine, store, session_id: int, prompt: str, todo: list[dict], top_p=None, max_tokens=None,
                 trust_remote_code: bool = False, stop_on_loop: bool = False, gold=None,
                 on_variant=lambda v: None, guard=contextlib.nullcontext) -> list[dict]:
    """Run each variant on one engine (loading a model only when it changes), recording each response into
    the compare session. `on_variant(v)` before each; `guard(job)` wraps each job (the CLI's Ctrl-C)."""
    results, loaded_key = [], None
    for v in todo:
        on_variant(v)
        result = dict(v)
        if (v["model"], v["adapter"]) != loaded_key:
            *_, loaded = engine.load(v["model"], v["adapter"], trust_remote_code).collect()
            loaded_key = (v["model"], v["adapter"]) if not isinstance(loaded, Failed) else None
            if isinstance(loaded, Failed):
                results.append({**result, "error": loaded.message})
                continue
        sampling = Sampling(temperature=v["temperature"], top_p=top_p, max_tokens=max_tokens, seed=v["seed"])
        job = engine.generate(ChatRequest((Message("user", prompt),), sampling, stop_on_loop=stop_on_loop))
        with guard(job), Recorder(store, session_id, prompt, engine.info, sampling, label=v["label"]) as recorder:
            recorder.follow(job).collect()
        turn = next(t for t in store.session(session_id)["turns"] if t["id"] == recorder.turn_id)
        result.update(model=turn["model"], status=turn["status"], thinking=turn["thinking"], answer=turn["content"],
                      stats=turn["stats"], inspection=turn["inspection"])
        if (turn["stats"] or {}).get("error"):
            result["error"] = turn["stats"]["error"]
        if gold is not None:
            result["verdict"] = verify_against(turn["content"], gold)
        results.append(result)
    return results

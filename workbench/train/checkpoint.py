"""Adapters in mlx-lm's format, and atomic training checkpoints.

An adapter folder is what `mlx_lm.generate --adapter-path` and `workbench run --adapter` read:
`adapters.safetensors` (the LoRA weights) + `adapter_config.json`. A checkpoint is an adapter
folder plus `optimizer.safetensors` and `state.json` (step, data position, seed: the trainer
reseeds MLX's RNG from seed and step, so that is the whole RNG state). Both are written to a temporary folder and renamed into place, so a kill -9 leaves
either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from workbench.errors import UserError
from workbench.jsonl import parse_line

CHECKPOINT = "checkpoint"


def apply_lora(model, lora) -> None:
    """Freeze the model and turn its linear layers into LoRA layers (mlx-lm's tuner)."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    layers = len(model.layers) if lora.num_layers < 0 else lora.num_layers
    linear_to_lora_layers(model, layers, lora.mlx_lm_parameters)


def adapter_config(lora, base_model: str) -> dict:
    layers = lora.num_layers
    return {"fine_tune_type": "lora", "num_layers": layers, "lora_parameters": lora.mlx_lm_parameters,
            "model": base_model}


@contextmanager
def adapters_off(model):
    """The base model (the reference policy) without a second copy of the weights: LoRA scale 0."""
    from mlx_lm.tuner.lora import LoRALinear

    layers = [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]
    scales = [m.scale for m in layers]
    for m in layers:
        m.scale = 0.0
    try:
        yield model
    finally:
        for m, s in zip(layers, scales):
            m.scale = s


def _write_adapters(folder: Path, model, config: dict) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    weights = dict(tree_flatten(model.trainable_parameters()))
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=1))


def _replace(tmp: Path, final: Path) -> None:
    old = final.with_name(final.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)  # the one moment a reader could see nothing: recovered by load_checkpoint
    shutil.rmtree(old, ignore_errors=True)


def save_adapters(folder: Path, model, config: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".adapters.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write_adapters(tmp, model, config)
    for name in ("adapters.safetensors", "adapter_config.json"):
        os.replace(tmp / name, folder / name)
    tmp.rmdir()


def save_checkpoint(run: Path, model, optimizer, config: dict, state: dict) -> None:
    import mlx.core as mx
    from mlx.utils import tree_flatten

    run = Path(run)
    tmp = run / (CHECKPOINT + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_adapters(tmp, model, config)
    mx.save_safetensors(str(tmp / "optimizer.safetensors"), dict(tree_flatten(optimizer.state)))
    (tmp / "state.json").write_text(json.dumps(state))
    with open(tmp / "state.json") as f:  # flush to disk before the rename makes it the checkpoint
        os.fsync(f.fileno())
    _replace(tmp, run / CHECKPOINT)


def load_checkpoint(run: Path, model, optimizer) -> dict:
    """Restore adapters and optimizer state into `model`/`optimizer`; returns state.json."""
    import mlx.core as mx
    from mlx.utils import tree_unflatten

    run = Path(run)
    folder = run / CHECKPOINT
    if not folder.exists() and (run / (CHECKPOINT + ".old")).exists():
        folder = run / (CHECKPOINT + ".old")  # killed between the two renames
    try:
        state = json.loads((folder / "state.json").read_text())
        model.load_weights(str(folder / "adapters.safetensors"), strict=False)
        optimizer.state = tree_unflatten(list(mx.load(str(folder / "optimizer.safetensors")).items()))
    except FileNotFoundError as e:
        raise UserError(f"{folder}: no checkpoint to resume ({Path(e.filename).name} missing)") from None
    except (ValueError, KeyError, RuntimeError) as e:
        raise UserError(f"{folder}: corrupt checkpoint ({str(e).splitlines()[0]})") from None
    return state


def cut_logs(run: Path, step: int, names=("metrics.jsonl", "samples.jsonl")) -> None:
    """Drop the rows of steps after `step` (the checkpoint resumed from) and a torn last line: a run
    killed between logging a step and checkpointing it logs that step again when resumed. Each file is
    rewritten atomically; rows it cannot read are kept."""
    for name in names:
        path = Path(run) / name
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            continue
        lines = text.splitlines(keepends=True)
        kept = [line for line in lines if line.endswith("\n") and not _after(line, step)]
        if len(kept) == len(lines):
            continue
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept), encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, path)


def _after(line: str, step: int) -> bool:
    try:
        row = parse_line(line)
    except ValueError:
        return False
    return isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] > step


def fuse_adapters(adapter: str | Path, model: str | None, out: str | Path) -> Path:
    """Merge LoRA adapters into the base weights and write a new model folder (mlx-lm's fuse)."""
    from mlx.utils import tree_unflatten
    from mlx_lm.utils import save

    from workbench.engine.loader import load_model
    from workbench.models.local import resolve_model

    adapter, out = Path(adapter), Path(out)
    if model is None:
        try:
            model = json.loads((adapter / "adapter_config.json").read_text())["model"]
        except (OSError, ValueError, KeyError):
            raise UserError(f"{adapter / 'adapter_config.json'}: names no base model; give --model") from None
    folder = resolve_model(model)
    loaded = load_model(folder, adapter=adapter)
    fused = [(n, m.fuse()) for n, m in loaded.model.named_modules() if hasattr(m, "fuse")]
    if fused:
        loaded.model.update_modules(tree_unflatten(fused))
    save(out, folder, loaded.model, loaded.tokenizer, loaded.config, donate_model=False)
    for name in ("profile.toml", "profile.json"):
        if (folder / name).exists():
            shutil.copy(folder / name, out / name)
    return out

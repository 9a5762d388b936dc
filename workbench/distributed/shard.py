"""Load a model folder sharded over a distributed group: pipeline (layer slices) or tensor (`shard()`).

Runs on every rank, on its main thread. Weights load lazily, so a rank reads only what it keeps.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from workbench.distributed.hostfile import free_memory_bytes, split_by_memory
from workbench.engine.events import ModelInfo
from workbench.engine.loader import LoadedModel, check_model_folder, check_model_type, compute_device
from workbench.errors import ModelLoadError
from workbench.models.local import quantization_label

OUR_PIPELINE = ("qwen2", "llama")  # the R1 distills: our wrapper (rank 0 first); others use mlx-lm's pipeline()


@dataclass
class Shard:
    """What one rank holds; rank 0 shows the table in `cluster status`."""

    rank: int
    host: str
    mode: str  # "pipeline" | "tensor" | "single"
    first_layer: int
    end_layer: int  # exclusive
    total_layers: int
    ways: int = 1  # tensor parallel: each layer is split this many ways
    memory_gb: float = 0.0  # active memory after loading
    peak_gb: float = 0.0  # peak while generating (updated after each request)
    free_gb: float = 0.0  # free memory before loading
    pid: int = 0

    def describe(self) -> str:
        if self.mode == "tensor":
            layers = f"1/{self.ways} of every layer's heads and MLP ({self.total_layers} layers)"
        else:
            layers = f"layers {self.first_layer}-{self.end_layer - 1} of {self.total_layers}"
        return (f"rank {self.rank} ({self.host}): {layers} · {self.memory_gb:.2f} GB loaded"
                + (f" · peak {self.peak_gb:.2f} GB" if self.peak_gb else "") + f" · {self.free_gb:.1f} GB were free")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Shard":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def summary(ranks: list[dict]) -> str:
    """One line for a status bar: '2 ranks · r0 layers 0-11, 3.1 GB · r1 layers 12-23, 2.9 GB'."""
    parts = [f"{len(ranks)} ranks"]
    for d in ranks:
        s = Shard.from_dict(d)
        held = f"1/{s.ways} of each layer" if s.mode == "tensor" else f"layers {s.first_layer}-{s.end_layer - 1}"
        parts.append(f"r{s.rank} {held}, {max(s.memory_gb, s.peak_gb):.1f} GB")
    return " · ".join(parts)


def load_sharded(folder: Path, group, mode: str, split: list[int] | None = None, host: str = "",
                 free: list[float] | None = None) -> tuple[LoadedModel, Shard]:
    """Load this rank's part. `split` (layer counts, rank 0 first) wins over `free` (bytes per rank)."""
    import mlx.core as mx
    from mlx_lm.utils import get_total_parameters, load_model, load_tokenizer, sharded_load

    from workbench.distributed.pipeline import pipeline
    from workbench.engine.profiles import load_profile

    folder = Path(folder)
    config = check_model_folder(folder)
    check_model_type(folder, config)
    rank, size = group.rank(), group.size()
    free_now = free_memory_bytes()
    try:
        if mode == "tensor":
            for key in ("num_attention_heads", "num_key_value_heads", "intermediate_size"):
                if int(config.get(key, size)) % size:
                    raise ModelLoadError(f"{folder / 'config.json'}: {key}={config[key]} does not divide over "
                                         f"{size} ranks for tensor parallelism (use --pipeline)")
            model, tokenizer, config = sharded_load(str(folder), tensor_group=group, return_config=True,
                                                    tokenizer_config={"trust_remote_code": False})
            n_layers = len(model.layers)
            first, end = 0, n_layers
        else:
            model, config = load_model(folder, lazy=True)
            n_layers = len(model.model.layers)
            if split is None:
                split = split_by_memory(n_layers, free or [1.0] * size)
            if len(split) != size or sum(split) != n_layers:
                raise ModelLoadError(f"--split {','.join(map(str, split))}: must be {size} counts summing to {n_layers} layers")
            if config.get("model_type") in OUR_PIPELINE or not hasattr(model.model, "pipeline"):
                first, end = pipeline(model, group, split)
            else:  # mlx-lm's own pipeline (DeepSeek-V3/R1 class): rank 0 holds the last layers
                model.model.pipeline(group, split)
                first, end = model.model.start_idx, model.model.end_idx
            mx.eval(model.parameters())
            tokenizer = load_tokenizer(folder, {"trust_remote_code": False}, eos_token_ids=config.get("eos_token_id"))
    except ModelLoadError:
        raise
    except (ValueError, AttributeError, AssertionError) as e:
        raise ModelLoadError(f"{folder / 'config.json'}: cannot shard this model {mode}-parallel over {size} ranks "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    profile = load_profile(folder)
    info = ModelInfo(
        name=folder.name, path=str(folder), model_type=config.get("model_type", ""),
        quantization=quantization_label(config), parameters=int(get_total_parameters(model)),
        location=f"{size} ranks, {mode} parallel", profile=profile.to_dict(), device=compute_device(),
    )
    shard = Shard(rank=rank, host=host, mode=mode, first_layer=first, end_layer=end, total_layers=n_layers,
                  ways=size if mode == "tensor" else 1,
                  memory_gb=mx.get_active_memory() / 1e9, free_gb=free_now / 1e9, pid=os.getpid())
    return LoadedModel(model, tokenizer, config, profile, info), shard

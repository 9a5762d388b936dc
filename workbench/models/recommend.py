"""Which catalog models fit a machine (or two together), best first, and why. Pure Python."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.models.catalog import CONTEXT, GB, RUNTIME_OVERHEAD, CatalogEntry, load_catalog

# Metal lets the GPU wire about three quarters of RAM by default (recommendedMaxWorkingSetSize);
# the rest stays with macOS and other apps. `sudo sysctl iogpu.wired_limit_mb=...` raises it.
GPU_SHARE = 0.75


def usable_memory(total_bytes: int) -> int:
    return int(total_bytes * GPU_SHARE)


@dataclass(frozen=True)
class Fit:
    entry: CatalogEntry
    machines: int
    memory_needed: int  # per machine
    memory_usable: int  # per machine
    disk_needed: int  # per machine
    disk_free: int
    context: int = CONTEXT
    kv_bits: int = 0
    draft: CatalogEntry | None = None  # a draft model counted beside it (weights and KV cache, download)
    drafting: bool = False  # a draft was asked for (the line says when the model has none)

    @property
    def fits_memory(self) -> bool:
        return self.memory_needed <= self.memory_usable

    @property
    def fits_disk(self) -> bool:
        return self.disk_needed <= self.disk_free

    @property
    def fits(self) -> bool:
        return self.fits_memory and self.fits_disk

    def why(self) -> str:
        e = self.entry
        per = " per machine" if self.machines > 1 else ""
        kv = f" at {self.kv_bits} bits" if self.kv_bits else ""
        d = self.draft
        drafted = f" + draft {d.name} {gb(draft_bytes(d, self.context, self.kv_bits))}" if d else ""
        mem = (f"needs {gb(self.memory_needed)}{per} at {context_words(self.context)} context"
               + (", no draft for it" if self.drafting and not d else "") + " (weights "
               f"{gb(e.weights_bytes / self.machines)} + KV cache{kv} {gb(e.kv_cache_bytes(self.context, self.kv_bits) / self.machines)}"
               f"{drafted} + {gb(RUNTIME_OVERHEAD)})")
        if self.fits_memory:
            mem += f", {gb(self.memory_usable - self.memory_needed)} headroom for longer contexts"
        else:
            mem += f", only {gb(self.memory_usable)} usable"
        disk = f"{gb(self.disk_needed)} download{per}, {gb(self.disk_free)} free"
        return f"{mem}; {disk}" + ("" if self.fits_disk else " (not enough disk)")


def gb(n: float) -> str:
    """Sizes as people read them: GB with one decimal, smaller files in MB or KB."""
    for unit, size in (("GB", GB), ("MB", 1e6), ("KB", 1e3)):
        if n >= size or unit == "KB":
            return f"{n / size:.1f} {unit}"
    return ""


def context_words(tokens: int) -> str:
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else f"{tokens:,}-token"


def draft_bytes(draft: CatalogEntry, context: int, kv_bits: int) -> int:
    """A draft model's memory beside the model it drafts for: its weights and its own KV cache of the context."""
    return draft.weights_bytes + draft.kv_cache_bytes(context, kv_bits)


def fit(entry: CatalogEntry, memory_bytes: int, disk_bytes: int, machines: int = 1, context: int = CONTEXT,
        kv_bits: int = 0, draft: CatalogEntry | None = None, drafting: bool = False) -> Fit:
    """Split across `machines` (mlx.distributed shards weights and KV cache); each keeps its own overhead.
    `context`: tokens of prompt and response; `kv_bits`: the KV cache quantized (4 or 8; 0: fp16); `draft`: a
    draft model decoding beside it, whole on each machine (`drafting`: one was asked for, perhaps none found)."""
    shared = entry.weights_bytes + entry.kv_cache_bytes(context, kv_bits)
    extra = draft_bytes(draft, context, kv_bits) if draft else 0
    return Fit(entry, machines, memory_needed=shared // machines + extra + int(RUNTIME_OVERHEAD),
               memory_usable=usable_memory(memory_bytes),
               disk_needed=entry.weights_bytes // machines + (draft.weights_bytes if draft else 0),
               disk_free=disk_bytes, context=context, kv_bits=kv_bits, draft=draft, drafting=drafting or draft is not None)


def ranked(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """Best first: published scores (mean AIME 2024, GPQA, LiveCodeBench), then size, then more bits."""
    return sorted(entries, key=lambda e: (-e.score, -e.params_b, -e.bits))


def recommend(memory_bytes: int, disk_bytes: int, machines: int = 1,
              entries: list[CatalogEntry] | None = None, context: int = CONTEXT, kv_bits: int = 0,
              draft: bool = False) -> list[Fit]:
    """Every downloadable catalog model, best first, with whether it fits (cluster-only ones need machines > 1).
    `draft`: count each model's catalog draft beside it (a cluster loads the whole draft on every machine)."""
    entries = load_catalog() if entries is None else entries
    by_name = {e.name: e for e in entries}
    candidates = [e for e in entries if not e.embedded and (machines > 1 or not e.cluster_only)]
    return [fit(e, memory_bytes, disk_bytes, machines, context, kv_bits, by_name.get(e.draft) if draft else None,
                draft) for e in ranked(candidates)]


def fits_to_pull(local_names: set[str], context: int = CONTEXT, kv_bits: int = 0) -> list[Fit]:
    """Catalog models that fit this machine's memory and free disk and are not here yet, best first (their KV
    cache of `context` tokens at `kv_bits`)."""
    try:
        fits = recommend(machine_memory(), free_disk(download_dir()), context=context, kv_bits=kv_bits)
    except Exception:  # noqa: BLE001 - a broken catalog must not keep the local models from the picker
        return []
    return [f for f in fits if f.fits and f.entry.name not in local_names]


def machine_memory() -> int:
    from workbench.machine import memory_bytes

    return memory_bytes() or 0


def free_disk(path: str | Path) -> int:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def download_dir() -> Path:
    """Where pulls land: the shared Hugging Face cache (HF_HUB_CACHE / HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "hub"

"""The catalog of models this app is for (`models/catalog.toml`), with sizes computed from the architecture.

Pure Python: the TUI picker, `workbench models recommend` and `workbench pull` read it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import UserError
from workbench.paths import shipped_models_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GB = 1e9
CONTEXT = 32768
KV_GROUP = 64  # values per fp16 scale and bias in a quantized KV cache
RUNTIME_OVERHEAD = 1 * GB  # activations, the MLX allocator's slack, the app itself
# Suites whose published scores every catalog model has: they rank models in `recommend`.
RANKING_SUITES = ("aime24", "gpqa", "livecodebench")


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # the alias users type, e.g. "r1-distill-qwen-7b-4bit"
    family: str
    title: str
    repo: str | None  # hub repo id; None for the embedded model
    architecture: str
    params_b: float
    bits: int
    layers: int
    kv_heads: int
    head_dim: int
    license: str = ""
    sampling: dict = field(default_factory=dict)  # profile values: temperature, top_p, max_tokens
    claims: dict = field(default_factory=dict)  # suite name -> percent
    codeforces_rating: int | None = None
    cluster_only: bool = False
    embedded: bool = False
    notes: str = ""
    download_gb: float | None = None
    draft: str = ""  # the catalog entry that drafts for this one (same tokenizer, smaller), "" none

    @property
    def weights_bytes(self) -> int:
        """On disk and in memory: `bits` per weight plus an fp16 scale and bias per group of 64."""
        if self.download_gb is not None:
            return int(self.download_gb * GB)
        per_weight = self.bits / 8 if self.bits >= 16 else (self.bits + 0.5) / 8
        return int(self.params_b * 1e9 * per_weight)

    def kv_cache_bytes(self, context: int = CONTEXT, kv_bits: int = 0) -> int:
        return kv_cache_bytes(self.layers, self.kv_heads, self.head_dim, context, kv_bits)

    def memory_bytes(self, context: int = CONTEXT, kv_bits: int = 0) -> int:
        return self.weights_bytes + self.kv_cache_bytes(context, kv_bits) + int(RUNTIME_OVERHEAD)

    @property
    def score(self) -> float:
        """Mean published score over the ranking suites (0 when unknown)."""
        values = [self.claims[s] for s in RANKING_SUITES if s in self.claims]
        return sum(values) / len(values) if len(values) == len(RANKING_SUITES) else 0.0

    def profile_values(self) -> dict:
        """What a pulled copy's profile.toml holds: sampling defaults and published claims."""
        return {**self.sampling, "claims": dict(self.claims)}


def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, context: int = CONTEXT, kv_bits: int = 0) -> int:
    """K and V of every layer for `context` tokens: fp16, or `kv_bits` plus an fp16 scale and bias per
    group of 64 (mlx-lm's quantized cache; from kv_start on it holds the whole context that way)."""
    per_value = kv_bits / 8 + 4 / KV_GROUP if kv_bits else 2
    return int(layers * kv_heads * head_dim * 2 * per_value * context)


def config_kv_cache_bytes(config: dict, context: int = CONTEXT, kv_bits: int = 0) -> int | None:
    """`kv_cache_bytes` from a config.json's attention sizes; None when it has no standard ones."""
    text = config.get("text_config") if isinstance(config, dict) else None
    config = {**config, **text} if isinstance(text, dict) else config
    try:
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        sizes = (config["num_hidden_layers"], kv_heads, head_dim)
    except (KeyError, TypeError, ZeroDivisionError, AttributeError):  # a config.json of any shape
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
        return None
    return kv_cache_bytes(*sizes, context, kv_bits)


def catalog_path() -> Path:
    return shipped_models_dir() / "catalog.toml"


def load_catalog(path: Path | None = None) -> list[CatalogEntry]:
    path = path or catalog_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing (the model catalog)") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a valid catalog ({str(e).splitlines()[0]})") from None
    profiles = data.get("profile", {})
    entries = []
    for family, f in data.get("family", {}).items():
        try:
            for bits in f["bits"]:
                entries.append(CatalogEntry(
                    name=family if f.get("embedded") else f"{family}-{bits}bit",
                    family=family, title=f["title"],
                    repo=f["repo"].format(bits=bits) if "repo" in f else None,
                    architecture=f["architecture"], params_b=float(f["params_b"]), bits=int(bits),
                    layers=int(f["layers"]), kv_heads=int(f["kv_heads"]), head_dim=int(f["head_dim"]),
                    license=f.get("license", ""), sampling=dict(profiles.get(f.get("profile"), {})),
                    claims=dict(f.get("claims", {})), codeforces_rating=f.get("codeforces_rating"),
                    cluster_only=bool(f.get("cluster_only")), embedded=bool(f.get("embedded")),
                    notes=f.get("notes", ""), download_gb=f.get("download_gb"),
                    draft=draft_name(data["family"], f.get("draft"), int(bits)),
                ))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: family '{family}' is malformed ({e!r})") from None
    return entries


def draft_name(families: dict, draft: str | None, bits: int) -> str:
    """The draft family's entry at these bits (or its nearest)."""
    if not draft:
        return ""
    available = families[draft]["bits"]
    return f"{draft}-{min(available, key=lambda b: (abs(b - bits), b))}bit"


def find_entry(name_or_repo: str, entries: list[CatalogEntry] | None = None) -> CatalogEntry | None:
    """By alias ("r1-distill-qwen-7b-4bit"), hub repo id, or the repo's last part, case-insensitive."""
    wanted = name_or_repo.strip().lower()
    for e in entries if entries is not None else load_catalog():
        candidates = {e.name.lower()}
        if e.repo:
            candidates |= {e.repo.lower(), e.repo.split("/")[-1].lower()}
        if wanted in candidates:
            return e
    return None


def find_family(names: list[str], entries: list[CatalogEntry] | None = None) -> CatalogEntry | None:
    """The catalog model one of these free-form names is exactly ("DeepSeek R1 Distill Qwen 7B", a GGUF file
    stem without its quantization suffix), ignoring case and punctuation; fine-tunes do not match."""
    def key(text: str) -> str:
        text = re.sub(r"[-._ ](i?q\d\w*|f16|f32|bf16|gguf)$", "", text.strip().lower())  # "-Q4_K_M", ".f16"
        return re.sub(r"[^a-z0-9.]", "", text)

    wanted = {key(n) for n in names if n}
    for e in entries if entries is not None else load_catalog():
        if not e.embedded and key(e.title.split(" (")[0]) in wanted:
            return e
    return None


def profile_toml(entry: CatalogEntry, source: str = "") -> str:
    """profile.toml for a copy of a catalog model: its sampling profile and the published claims."""
    lines = [f"# {entry.title}{source} ({entry.family} in the workbench catalog); edit freely, pulls keep your changes."]
    lines += [f"{k} = {json.dumps(v)}" for k, v in entry.sampling.items()]
    if entry.draft:
        lines.append(f"# draft = {json.dumps(entry.draft)}  # speculative decoding: `workbench pull {entry.draft}`, then uncomment")
    if entry.codeforces_rating:
        lines.append(f"codeforces_rating = {entry.codeforces_rating}")
    lines += ["", "# Published scores (percent) for the bf16 original; quantized copies may score lower.", "[claims]"]
    lines += [f"{k} = {float(v)}" for k, v in entry.claims.items()]
    return "\n".join(lines) + "\n"

"""Find and list local model folders. Pure Python (no MLX)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.errors import UserError
from workbench.paths import shipped_models_dir, user_models_dir

DEFAULT_MODEL = "r1-nano"


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: str
    size_bytes: int
    quantization: str  # "4-bit", "8-bit", "" (full precision)
    model_type: str
    source: str  # "shipped" | "user"
    default: bool

    def to_dict(self) -> dict:
        return asdict(self)


def check_model_name(name: str) -> str:
    """A name for a folder in the user models directory: a plain name, never a path (`--name ../x`)."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name or ""):
        raise UserError(f"--name {name!r}: a model name is a plain name (letters, digits, '.', '_', '-'), "
                        "not a path")
    return name


def quantization_label(config: dict) -> str:
    q = config.get("quantization") or {}
    return f"{q['bits']}-bit" if isinstance(q, dict) and "bits" in q else ""


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def model_roots() -> list[tuple[str, Path]]:
    return [("shipped", shipped_models_dir()), ("user", user_models_dir())]


def list_local() -> list[LocalModel]:
    found = []
    for source, root in model_roots():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and _is_model_folder(p)):
            try:
                config = json.loads((folder / "config.json").read_text())
            except (OSError, ValueError):
                config = {}
            config = config if isinstance(config, dict) else {}
            size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
            found.append(LocalModel(
                name=folder.name, path=str(folder), size_bytes=size,
                quantization=quantization_label(config), model_type=str(config.get("model_type", "?")),
                source=source, default=folder.name == DEFAULT_MODEL,
            ))
    return found


def resolve_model(name_or_path: str | None) -> Path:
    """A model folder from a path, or a name of a shipped or user model (default: the embedded one)."""
    name = name_or_path or DEFAULT_MODEL
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if "/" not in name and "\\" not in name:
        for _, root in model_roots():
            if (root / name).is_dir():
                return (root / name).resolve()
        from workbench.models.catalog import find_entry

        try:
            entry = find_entry(name)
        except UserError:
            entry = None
        if entry is not None and not entry.embedded:
            raise UserError(f"'{name}' is in the catalog but not on this machine: `workbench pull {entry.name}`")
    raise UserError(f"no model named '{name}' (a folder path, or one of `workbench models`)")

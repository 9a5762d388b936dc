"""Load an mlx-lm model folder, with one-line errors that name the file at fault.

`check_model_folder` is cheap and MLX-free, so it also serves `workbench models` and the TUI picker.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.events import ModelInfo
from workbench.engine.profiles import Profile, load_profile, model_context
from workbench.errors import ModelLoadError
from workbench.models.local import quantization_label
from workbench.models.identity import file_hashes
from workbench.models.manifest import check_against_manifest

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")
MAX_HEADER_BYTES = 100 << 20  # a safetensors header is JSON; real ones are well under this


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None


def has_chat_template(folder: Path, tokenizer_config: dict) -> bool:
    return bool(tokenizer_config.get("chat_template")) or any(
        (folder / name).exists() for name in ("chat_template.jinja", "chat_template.json")
    )


def check_model_folder(folder: Path) -> dict:
    """Validate a model folder without loading it; returns its config."""
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: no such model folder")
    config = _read_json(folder / "config.json")
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ModelLoadError(f"{folder / 'config.json'}: no \"model_type\" (not an mlx-lm model config)")
    if not sorted(folder.glob("*.safetensors")):
        raise ModelLoadError(f"{folder}: no *.safetensors weight files")
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ModelLoadError(f"{folder / 'tokenizer.json'}: missing (no tokenizer)")
    if (folder / "tokenizer.json").exists():
        _read_json(folder / "tokenizer.json")
    tokenizer_config = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    if not has_chat_template(folder, tokenizer_config if isinstance(tokenizer_config, dict) else {}):
        raise ModelLoadError(f"{folder / 'tokenizer_config.json'}: the tokenizer has no chat template")
    return config


def check_model_type(folder: Path, config: dict) -> None:
    import importlib.util

    from mlx_lm.utils import MODEL_REMAPPING

    model_type = MODEL_REMAPPING.get(config["model_type"], config["model_type"])
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", model_type):  # a module name, never a path
        raise ModelLoadError(f"{folder / 'config.json'}: model_type {config['model_type']!r} is not a model type name "
                             "(letters, digits and '_')")
    if importlib.util.find_spec(f"mlx_lm.models.{model_type}") is None:
        raise ModelLoadError(f"{folder / 'config.json'}: model_type '{config['model_type']}' is not supported by mlx-lm")


def safetensors_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors file's header alone (no tensor data is read)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
        return {name: list(t["shape"]) for name, t in header.items() if name != "__metadata__"}
    except (OSError, struct.error, ValueError, UnicodeDecodeError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{path}: cannot read weights (bad safetensors header: {str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def check_declared_sizes(folder: Path, config: dict) -> None:
    """config.json's layer count and width against the tensors in the weight headers, before anything is
    built: `num_hidden_layers: 100000` would otherwise build 100000 layers (minutes, gigabytes) first."""
    shapes = {}
    for path in sorted(folder.glob("*.safetensors")):
        shapes.update(safetensors_shapes(path))
    declared = {**(config.get("text_config") if isinstance(config.get("text_config"), dict) else {}), **config}
    where = folder / "config.json"
    for field in ("num_hidden_layers", "hidden_size"):
        value = declared.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ModelLoadError(f"{where}: {field} is {value!r}, not a positive integer")
    layers = {int(m.group(1)) for name in shapes if (m := re.search(r"(?:^|\.)layers\.(\d+)\.", name))}
    declared_layers = declared.get("num_hidden_layers")
    if layers and isinstance(declared_layers, int) and declared_layers > len(layers):
        raise ModelLoadError(f"{where}: num_hidden_layers is {declared_layers}, but the weights hold {len(layers)} layers "
                             "(weights do not match config.json)")
    norm = next((shape for name, shape in shapes.items() if re.fullmatch(r"(model\.)?norm\.weight", name)), None)
    hidden = declared.get("hidden_size")
    if norm is not None and isinstance(hidden, int) and norm != [hidden]:
        raise ModelLoadError(f"{where}: hidden_size is {hidden}, but the weights' final norm has {norm[0] if norm else 0} "
                             "(weights do not match config.json)")


def compute_device() -> str:
    import mlx.core as mx

    return "gpu" if mx.default_device().type == mx.DeviceType.gpu else "cpu"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any  # mlx_lm TokenizerWrapper
    config: dict
    profile: Profile
    info: ModelInfo


def _find_corrupt_weights(folder: Path) -> str | None:
    import mlx.core as mx

    for path in sorted(folder.glob("*.safetensors")):
        try:
            mx.load(str(path))
        except Exception as e:  # noqa: BLE001 - any failure to read names the file
            return f"{path}: cannot read weights ({str(e).splitlines()[0]})"
    return None


def load_model(folder: Path, adapter: str | Path | None = None, trust_remote_code: bool = False) -> LoadedModel:
    """Load on the calling thread (the engine thread: MLX streams belong to the thread that made them)."""
    folder = Path(folder)
    config = check_model_folder(folder)
    check_against_manifest(folder)  # a pulled, imported or shipped model's files must be the bytes recorded
    check_model_type(folder, config)
    check_declared_sizes(folder, config)
    from mlx_lm.utils import get_total_parameters, load_adapters, load_tokenizer
    from mlx_lm.utils import load_model as mlx_load_model

    try:
        model, config = mlx_load_model(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - translated into a one-line error naming the file
        corrupt = _find_corrupt_weights(folder)
        if corrupt:
            raise ModelLoadError(corrupt) from None
        raise ModelLoadError(f"{folder}: weights do not match config.json ({str(e).splitlines()[0]})") from None
    if adapter is not None:
        adapter = Path(adapter)
        for name in ("adapter_config.json", "adapters.safetensors"):
            if not (adapter / name).is_file():
                raise ModelLoadError(f"{adapter / name}: missing (not an mlx-lm adapter folder)")
        _read_json(adapter / "adapter_config.json")
        try:
            model = load_adapters(model, str(adapter))
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"{adapter / 'adapters.safetensors'}: does not fit this model ({str(e).splitlines()[0]})") from None
        model.eval()
    try:
        tokenizer = load_tokenizer(
            folder, {"trust_remote_code": trust_remote_code}, eos_token_ids=config.get("eos_token_id")
        )
    except Exception as e:  # noqa: BLE001
        raise ModelLoadError(f"{folder / 'tokenizer.json'}: cannot load tokenizer ({str(e).splitlines()[0]})") from None
    if not getattr(tokenizer, "has_chat_template", True):
        raise ModelLoadError(f"{folder / 'tokenizer_config.json'}: the tokenizer has no chat template")
    # The identity sessions and report cards record, hashed here on the engine's thread (once per file:
    # it is cached) rather than by whoever records the first response (the app's thread).
    file_hashes(folder)
    file_hashes(adapter)
    profile = load_profile(folder)
    info = ModelInfo(
        name=folder.name, path=str(folder), model_type=config.get("model_type", ""),
        quantization=quantization_label(config), parameters=int(get_total_parameters(model)),
        adapter=str(adapter) if adapter else None, profile=profile.to_dict(), device=compute_device(),
        context=model_context(config, tokenizer) or 0,
    )
    return LoadedModel(model, tokenizer, config, profile, info)

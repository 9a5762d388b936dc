"""One identity for model and adapter folders: the sha256 of every file that decides what the model
computes, and one sha256 over those.

Pull manifests, report cards and sessions all use it, so a session's `model_hash` equals the
`model_sha256` of a report card of the same weights. Hashes are cached in
`$WORKBENCH_HOME/cache/sha256.json` by (real path, size, mtime_ns): a big model is hashed once, not at
every launch. A change that keeps a file's size and mtime is therefore only seen by a fresh hash
(`file_sha256(path, fresh=True)`, what `workbench models verify` does); its result replaces the cached one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from workbench.paths import workbench_home

# Files that decide what a model computes (what mlx-lm and the tokenizer may read): weights, configs,
# tokenizers, chat templates, remote code. Manifests, profiles, READMEs and training logs are not the model.
MODEL_SUFFIXES = (".safetensors", ".json", ".model", ".tiktoken", ".jinja", ".txt", ".npz", ".gguf", ".bin", ".py")
NOT_MODEL_FILES = {"manifest.json"}
CHUNK = 1 << 20


def is_model_file(name: str) -> bool:
    return Path(name).suffix in MODEL_SUFFIXES and name not in NOT_MODEL_FILES and not name.startswith(".")


def model_files(folder: Path) -> list[Path]:
    """The files of a model (or adapter) folder that are part of its identity, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_model_file(p.name) and p.is_file())


def sha256_and_git_oid(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) in one pass: the hub gives sha256 for LFS files and the git oid for the rest.
    The sha256 goes into the cache."""
    st = Path(path).stat()
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {st.st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    remember(path, sha256.hexdigest(), st)
    return sha256.hexdigest(), sha1.hexdigest()


# ---- the cache: real path -> [size, mtime_ns, sha256] ------------------------------------------

def _cache_path() -> Path:
    return workbench_home() / "cache" / "sha256.json"


def _load_cache() -> dict:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _save_cache(cache: dict) -> None:
    path = _cache_path()
    cache = {key: entry for key, entry in cache.items() if os.path.exists(key)}  # forget deleted files
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sha256.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f)
        os.replace(tmp, path)  # concurrent writers: the last one wins, each file whole
    except OSError:  # a cache, nothing more: we hash again next time
        if tmp:
            Path(tmp).unlink(missing_ok=True)


def remember(path: Path, sha256: str, st: os.stat_result | None = None) -> None:
    """Record a file's sha256 (just computed in full) for its current size and mtime."""
    st = st or Path(path).stat()
    cache = _load_cache()
    cache[str(Path(path).resolve())] = [st.st_size, st.st_mtime_ns, sha256]
    _save_cache(cache)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _matches(entry, st: os.stat_result) -> bool:
    return isinstance(entry, (list, tuple)) and len(entry) == 3 and entry[0] == st.st_size and entry[1] == st.st_mtime_ns


def _sha256(path: Path, cache: dict, fresh: bool, known) -> str:
    st = path.stat()
    key = str(path.resolve())
    if not fresh:
        for entry in (cache.get(key), known):  # the cache first: it holds the latest full hash
            if _matches(entry, st):
                cache[key] = list(entry)
                return entry[2]
    sha = _hash(path)
    cache[key] = [st.st_size, st.st_mtime_ns, sha]
    return sha


def file_sha256s(paths: list[Path], fresh: bool = False, known: list | None = None) -> list[str]:
    """sha256 of each file: cached unless its size or mtime changed; `fresh` hashes every byte again
    (and records what it found, so later cheap checks agree with it). `known[i]`, a (size, mtime_ns,
    sha256) that an earlier full hash recorded (a manifest), counts as a cache entry when the cache has none."""
    cache = _load_cache()
    before = dict(cache)
    hashes = [_sha256(Path(p), cache, fresh, (known or [None] * len(paths))[i]) for i, p in enumerate(paths)]
    if cache != before:
        _save_cache(cache)
    return hashes


def file_sha256(path: Path, fresh: bool = False) -> str:
    return file_sha256s([Path(path)], fresh)[0]


# ---- a folder's identity -----------------------------------------------------------------------

def file_hashes(folder: Path | None) -> dict[str, str]:
    """{file name: sha256} of a model (or adapter) folder's model files; {} for no folder."""
    if folder is None:
        return {}
    files = model_files(Path(folder))
    return dict(zip((p.name for p in files), file_sha256s(files)))


def combined_sha256(files: dict[str, str]) -> str:
    """One hash for a set of files: sha256 over sorted 'name sha' lines (a report card's `model_sha256`)."""
    return hashlib.sha256("".join(f"{n} {h}\n" for n, h in sorted(files.items())).encode()).hexdigest()


def folder_sha256(folder: Path | str | None) -> str | None:
    """The identity of a model or adapter folder (None when there is no such folder)."""
    if not folder or not Path(folder).is_dir():
        return None
    return combined_sha256(file_hashes(Path(folder)))

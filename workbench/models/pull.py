"""Pull a model from the Hugging Face hub: fit check, download, hash every file, record a manifest.

Weights land in the shared Hugging Face cache (HF_HOME / HF_HUB_CACHE, HF_ENDPOINT and tokens honoured,
so other tools reuse them); the user models directory gets a folder named after the model with links
to those files, a `manifest.json` (repo, commit, sha256 of every file) and a `profile.toml`.
A killed pull resumes: files already complete in the cache are not fetched again.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.errors import UserError
from workbench.models.catalog import (
    CONTEXT, KV_GROUP, RUNTIME_OVERHEAD, CatalogEntry, find_entry, kv_cache_bytes, profile_toml,
)
from workbench.models.identity import sha256_and_git_oid
from workbench.models.local import check_model_name
from workbench.models.manifest import MANIFEST, file_record, read_manifest, write_manifest
from workbench.models.recommend import context_words, download_dir, free_disk, gb, machine_memory, usable_memory
from workbench.paths import user_models_dir

# What mlx-lm needs to load a model; never *.py (no remote code), nor other frameworks' weights.
NEEDED = ("*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja")
# huggingface_hub names partial files uniquely per process and cannot reuse them; a killed pull leaves
# one behind. Older than this, nobody is writing it any more.
STALE_PARTIAL_SECONDS = 600


@dataclass
class RemoteFile:
    path: str
    size: int
    git_oid: str | None
    lfs_sha256: str | None


@dataclass
class PullPlan:
    repo: str
    revision: str  # as asked ("main", a tag, a commit)
    commit: str  # what it resolved to
    files: list[RemoteFile]
    entry: CatalogEntry | None
    name: str  # the folder in the user models directory
    missing_bytes: int = 0  # not yet in the cache
    memory_needed: int = 0  # weights, the KV cache of `context` tokens at `kv_bits`, the runtime's overhead
    context: int = CONTEXT
    kv_bits: int = 0  # 0: fp16
    notes: list[str] = field(default_factory=list)

    @property
    def download_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None  # read per call (huggingface_hub reads it once, at import)


def _hub_error(repo: str, revision: str | None, e: Exception) -> UserError:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(e, RevisionNotFoundError):
        return UserError(f"{repo}: no revision '{revision}' on the hub")
    if isinstance(e, GatedRepoError):
        return UserError(f"{repo}: gated on the hub; accept its terms there and log in (`hf auth login`)")
    if isinstance(e, RepositoryNotFoundError):
        return UserError(f"{repo}: no such model on the hub (or it is private: log in with `hf auth login`)")
    return UserError(f"{repo}: the hub could not be reached ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


def plan_pull(name_or_repo: str, revision: str | None = None, name: str | None = None, context: int = CONTEXT,
              kv_bits: int = 0) -> PullPlan:
    """Ask the hub what `name_or_repo` at `revision` is: its commit and the files mlx-lm needs; the memory it
    needs counts a KV cache of `context` tokens at `kv_bits` (0: fp16)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    if name is not None:
        check_model_name(name)  # before asking the hub
    entry = find_entry(name_or_repo)
    repo = entry.repo if entry else name_or_repo.strip()
    if entry and entry.embedded:
        raise UserError(f"'{entry.name}' ships with the app: nothing to pull")
    if not repo or repo.count("/") != 1:
        raise UserError(f"'{name_or_repo}' is neither a catalog model (`workbench models catalog`) nor a hub repo id (owner/name)")
    api = HfApi(endpoint=_endpoint())
    try:
        info = api.repo_info(repo, revision=revision)
        tree = list(api.list_repo_tree(repo, revision=info.sha, recursive=True))
    except Exception as e:  # noqa: BLE001 - every hub failure becomes one line
        raise _hub_error(repo, revision, e) from None
    files = [RemoteFile(f.path, f.size, f.blob_id, f.lfs.sha256 if f.lfs else None)
             for f in tree if isinstance(f, RepoFile) and any(fnmatch.fnmatch(f.path.split("/")[-1], p) for p in NEEDED)]
    if not any(f.path.endswith(".safetensors") for f in files) or not any(f.path == "config.json" for f in files):
        raise UserError(f"{repo}: no config.json and *.safetensors at {info.sha[:12]} (not an MLX / safetensors model)")
    plan = PullPlan(repo, revision or "main", info.sha, files, entry,
                    name or (entry.name if entry else repo.split("/")[-1]), context=context, kv_bits=kv_bits)
    cached = _snapshot_dir(repo, plan.commit)
    plan.missing_bytes = sum(f.size for f in files if not (cached / f.path).is_file())
    weights = sum(f.size for f in files if f.path.endswith(".safetensors"))  # the hub's sizes, not an estimate
    kv = entry.kv_cache_bytes(context, kv_bits) if entry else _kv_cache_from_config(plan, weights)
    plan.memory_needed = weights + kv + int(RUNTIME_OVERHEAD)
    return plan


def _snapshot_dir(repo: str, commit: str) -> Path:
    return download_dir() / ("models--" + repo.replace("/", "--")) / "snapshots" / commit


def _kv_cache_from_config(plan: PullPlan, weights: int) -> int:
    """The plan's KV cache from config.json's attention sizes (if unusual: a fifth of the weights at 32k, fp16)."""
    from huggingface_hub import hf_hub_download

    from workbench.models.catalog import config_kv_cache_bytes

    try:
        path = hf_hub_download(plan.repo, "config.json", revision=plan.commit, cache_dir=download_dir(), endpoint=_endpoint())
        kv = config_kv_cache_bytes(json.loads(Path(path).read_text()), plan.context, plan.kv_bits)
    except Exception:  # noqa: BLE001 - any config we cannot read
        kv = None
    if kv is None:
        plan.notes.append("KV cache estimated (config.json has no standard attention sizes)")
        share = kv_cache_bytes(1, 1, KV_GROUP, plan.context, plan.kv_bits) / kv_cache_bytes(1, 1, KV_GROUP, CONTEXT)
        return int(weights / 5 * share)
    return kv


def check_fit(plan: PullPlan, memory_bytes: int | None = None, disk_bytes: int | None = None) -> None:
    """Refuse (UserError) when the model will not fit in memory or on disk; `--force` skips this."""
    memory_bytes = machine_memory() if memory_bytes is None else memory_bytes
    disk_bytes = free_disk(download_dir()) if disk_bytes is None else disk_bytes
    hint = "; --force pulls anyway"
    if memory_bytes and plan.memory_needed > usable_memory(memory_bytes):
        raise UserError(f"{plan.name} needs {gb(plan.memory_needed)} of memory at {context_words(plan.context)} context "
                        f"with {kv_words(plan.kv_bits)} KV cache, this machine lets the GPU use "
                        f"{gb(usable_memory(memory_bytes))} (of {gb(memory_bytes)}); a shorter --context or "
                        f"--kv-bits 4 needs less{hint}")
    if plan.missing_bytes > disk_bytes:
        raise UserError(f"{plan.name} needs {gb(plan.missing_bytes)} more disk in {download_dir()}, {gb(disk_bytes)} free{hint}")


def kv_words(kv_bits: int) -> str:
    return f"a {kv_bits}-bit" if kv_bits else "an fp16"


class _Progress:
    """A tqdm stand-in for huggingface_hub that reports bytes to a callback (the TUI's progress bar)."""

    callback: Callable[[int, int], None] | None = None

    def __init__(self, *args, **kwargs):
        # file bytes only: huggingface_hub also keeps a network-bytes bar ("Downloading bytes") with a guessed total
        self.unit = "file-B" if kwargs.get("unit") == "B" and kwargs.get("desc") != "Downloading bytes" else "it"
        self.total = kwargs.get("total") or 0
        self.n = kwargs.get("initial") or 0

    def update(self, n=1):
        self.n += n or 0
        if self.unit == "file-B" and type(self).callback:
            type(self).callback(self.n, self.total)

    def __getattr__(self, name):  # refresh, set_description, close, ...: nothing to draw
        return lambda *a, **k: None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def download(plan: PullPlan, on_progress: Callable[[int, int], None] | None = None) -> Path:
    """snapshot_download of exactly the planned files at the planned commit; returns the snapshot folder."""
    from huggingface_hub import snapshot_download

    blobs = download_dir() / ("models--" + plan.repo.replace("/", "--")) / "blobs"
    for partial in blobs.glob("*.incomplete"):
        try:
            if time.time() - partial.stat().st_mtime > STALE_PARTIAL_SECONDS:
                partial.unlink()
        except OSError:
            pass
    tqdm_class = None
    if on_progress is not None:
        tqdm_class = type("Progress", (_Progress,), {"callback": staticmethod(on_progress)})
    try:
        path = snapshot_download(plan.repo, revision=plan.commit, allow_patterns=[f.path for f in plan.files],
                                 cache_dir=download_dir(), endpoint=_endpoint(), tqdm_class=tqdm_class)
    except OSError as e:
        raise UserError(f"{plan.repo}: download failed ({str(e).splitlines()[0]}); run the same pull again to resume") from None
    except Exception as e:  # noqa: BLE001
        raise _hub_error(plan.repo, plan.revision, e) from None
    return Path(path)


def hash_and_check(plan: PullPlan, snapshot: Path) -> dict:
    """sha256 of every file; a file that disagrees with the hub's LFS sha256 (or git oid) is deleted and refused."""
    records = {}
    for f in plan.files:
        path = snapshot / f.path
        sha256, git_oid = sha256_and_git_oid(path)  # also seeds the hash cache: loading will not hash it again
        expected = f.lfs_sha256 or f.git_oid
        if expected and expected not in (sha256, git_oid):
            blob = path.resolve()
            path.unlink(missing_ok=True)
            if blob != path:
                blob.unlink(missing_ok=True)
            raise UserError(f"{plan.repo}/{f.path}: downloaded bytes do not match the hub's hash "
                            f"({sha256[:12]}..., expected {expected[:12]}...); deleted that copy, nothing recorded")
        records[f.path] = file_record(path, sha256)
    return records


def target_folder(plan: PullPlan) -> tuple[Path, dict | None]:
    """The folder to (re)fill and its current manifest; refuses to overwrite anything but an earlier pull of the same repo."""
    folder = user_models_dir() / plan.name
    old = read_manifest(folder) if folder.exists() else None
    if folder.exists() and (old is None or old.get("repo") != plan.repo):
        held = f"holds {old['repo']}" if old and old.get("repo") else "exists and was not pulled"
        raise UserError(f"{folder}: already {held}; choose another --name")
    return folder, old


def install(plan: PullPlan, snapshot: Path, records: dict) -> Path:
    """The user-models folder: links to the cached files, manifest.json, profile.toml."""
    folder, old = target_folder(plan)
    folder.mkdir(parents=True, exist_ok=True)
    for f in plan.files:
        link = folder / f.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            link.symlink_to(snapshot / f.path)
        except OSError:  # no symlinks (some Windows setups): copy
            shutil.copy2(snapshot / f.path, link)
    for name in (old or {}).get("files", {}):
        if name not in records and (folder / name).is_symlink():
            (folder / name).unlink()  # a file of the previous revision
    write_manifest(folder, {
        "repo": plan.repo, "revision": plan.revision, "commit": plan.commit,
        "pulled_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "catalog": plan.entry.name if plan.entry else None,
        "files": {name: {**r, "lfs_sha256": next((f.lfs_sha256 for f in plan.files if f.path == name), None)}
                  for name, r in records.items()},
    })
    if plan.entry and not (folder / "profile.toml").exists():
        (folder / "profile.toml").write_text(profile_toml(plan.entry))
    return folder


def pull(name_or_repo: str, revision: str | None = None, name: str | None = None, force: bool = False,
         memory_bytes: int | None = None, disk_bytes: int | None = None,
         on_progress: Callable[[int, int], None] | None = None, on_plan: Callable[[PullPlan], None] | None = None,
         context: int = CONTEXT, kv_bits: int = 0) -> Path:
    """`context`, `kv_bits`: the KV cache the fit check counts (tokens of prompt and response; 0: fp16)."""
    if context < 1:
        raise UserError(f"--context must be 1 token or more, not {context}")
    entry = find_entry(name_or_repo)
    if entry and entry.cluster_only and not force:  # known before asking the hub
        raise UserError(f"{entry.name} needs two or more machines (`workbench cluster`), "
                        f"{gb(entry.memory_bytes(context, kv_bits))} in all; --force pulls anyway")
    plan = plan_pull(name_or_repo, revision, name, context, kv_bits)
    target_folder(plan)  # before downloading gigabytes
    if not force:
        check_fit(plan, memory_bytes, disk_bytes)
    if on_plan:
        on_plan(plan)
    snapshot = download(plan, on_progress)
    return install(plan, snapshot, hash_and_check(plan, snapshot))


__all__ = ["MANIFEST", "PullPlan", "check_fit", "download", "hash_and_check", "install", "plan_pull", "pull"]

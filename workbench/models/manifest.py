"""A model's manifest: the sha256 of every file as it was downloaded, imported or shipped.

- `manifest.json` (a pull or an import, in the user models directory): origin, and per file sha256,
  size and mtime_ns (and the hub's LFS sha256).
- `manifest.toml` (a shipped model, written by `scripts/train_nano.py`): how it was made, and a `[files]`
  table of sha256. `rehash_shipped_manifest` (`scripts/rehash_model.py FOLDER`) rewrites that table
  after a deliberate change to a shipped file.

Loading checks every file against the manifest through `workbench.models.identity` (hashing only files
whose size or mtime is not what was last hashed); a model file the manifest does not list (weights or a
chat template added later) is refused too. `workbench models verify NAME` hashes every byte again and
records what it found, so a change that kept size and mtime, once seen by verify, is refused by the loader.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from workbench.errors import ModelLoadError, UserError
from workbench.models import identity

MANIFEST = "manifest.json"
SHIPPED_MANIFEST = "manifest.toml"


def file_record(path: Path, sha256: str) -> dict:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def hashed_records(folder: Path, names) -> dict:
    """{name: record} of files just written (an import): hashed once, and the hash cache seeded."""
    return {n: file_record(folder / n, identity.file_sha256(folder / n, fresh=True)) for n in names}


def write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)  # never a half-written manifest


def manifest_path(folder: Path) -> Path | None:
    for name in (MANIFEST, SHIPPED_MANIFEST):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_manifest(folder: Path) -> dict | None:
    """The manifest with `files` as {name: {"sha256": ..., maybe "size", "mtime_ns"}}; None if there is none."""
    path = manifest_path(folder)
    if path is None:
        return None
    if path.name == SHIPPED_MANIFEST:
        import tomllib

        try:
            manifest = tomllib.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{path}: not valid TOML ({str(e).splitlines()[0]})") from None
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ModelLoadError(f"{path}: no [files] table of sha256 strings (not a workbench manifest)")
        return {**manifest, "files": {name: {"sha256": sha} for name, sha in files.items()}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelLoadError(f"{path}: no \"files\" table (not a workbench manifest)")
    return manifest


def check_files(folder: Path, full: bool = False) -> list[str]:
    """Problems as 'path: what', empty when every file matches the manifest and every model file is listed.
    `full` hashes every byte (verify); otherwise only files whose size or mtime is not what was last hashed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return []
    where = manifest_path(folder).name
    records = {name: r if isinstance(r, dict) else {} for name, r in manifest["files"].items()}
    problems, present = [], []
    for name, record in sorted(records.items()):
        path = folder / name
        try:
            st = path.stat()
        except OSError:
            problems.append(f"{path}: missing")
            continue
        if "size" in record and st.st_size != record["size"]:
            problems.append(f"{path}: size {st.st_size} bytes, expected {record['size']}")
            continue
        present.append((name, record, st))
    known = [(r["size"], r["mtime_ns"], r.get("sha256")) if "size" in r and "mtime_ns" in r else None
             for _, r, _ in present]
    hashes = identity.file_sha256s([folder / name for name, _, _ in present], fresh=full, known=known)
    touched = False
    for (name, record, st), sha in zip(present, hashes):
        if sha != record.get("sha256"):
            problems.append(f"{folder / name}: contents changed (sha256 differs from {where})")
        elif where == MANIFEST and record.get("mtime_ns") != st.st_mtime_ns:
            record["mtime_ns"] = st.st_mtime_ns  # same bytes, new mtime (copied, touched)
            touched = True
    for path in identity.model_files(folder):
        if path.name not in records:
            problems.append(f"{path}: not in {where} (added after it was written)")
    if touched:
        try:
            write_manifest(folder, {**manifest, "files": records})
        except OSError:
            pass  # a read-only folder: the hash cache still knows
    return problems


def remedy(folder: Path, manifest: dict) -> str:
    """What restores a clean copy, by where the model came from."""
    if manifest.get("repo"):
        return "`workbench pull` fetches a clean copy"
    if manifest.get("source") == "gguf":
        return "`workbench import --force` rebuilds it from the GGUF file"
    if manifest_path(folder).name == SHIPPED_MANIFEST:
        return ("reinstall the app (in a checkout, after a deliberate change: "
                f"`python scripts/rehash_model.py {folder}`)")
    return "restore the files"


def check_against_manifest(folder: Path) -> None:
    """Called by the loader: refuse a model whose files are not what its manifest records."""
    folder = Path(folder)
    problems = check_files(folder)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelLoadError(f"{problems[0]}{more}; refusing to load. `workbench models verify {folder.name}` "
                             f"lists every difference; {remedy(folder, read_manifest(folder))}")


def verify_model(folder: Path) -> list[str]:
    """Hash every byte again (`workbench models verify`); the loader then agrees with what this found."""
    if read_manifest(folder) is None:
        raise UserError(f"{folder}: no {MANIFEST} or {SHIPPED_MANIFEST} (only pulled, imported and shipped "
                        "models have recorded hashes)")
    return check_files(folder, full=True)


def rehash_shipped_manifest(folder: Path) -> dict[str, str]:
    """Rewrite the `[files]` table of a shipped model's manifest.toml with the sha256 of its files as they
    are now (the files it listed that still exist, plus every model file); the rest of the file is kept.
    Returns {name: sha256}."""
    folder = Path(folder)
    path = folder / SHIPPED_MANIFEST
    text = path.read_text(encoding="utf-8")
    listed = read_manifest(folder)["files"] if manifest_path(folder) == path else {}
    names = sorted({n for n in listed if (folder / n).is_file()} | {p.name for p in identity.model_files(folder)})
    files = dict(zip(names, identity.file_sha256s([folder / n for n in names], fresh=True)))
    table = "[files]\n" + "".join(f"{json.dumps(n)} = {json.dumps(h)}\n" for n, h in files.items())
    match = re.search(r"^\[files\]\n(?:(?!\[).*\n?)*", text, flags=re.M)
    text = text[:match.start()] + table + text[match.end():] if match else text.rstrip("\n") + "\n" + table
    path.write_text(text, encoding="utf-8")
    read_manifest(folder)  # still valid TOML
    return files

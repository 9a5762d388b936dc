"""The manifest of a pulled model: where it came from and the sha256 of every file as downloaded.

`manifest.json` sits in the model's folder in the user models directory. Loading re-checks each file
cheaply (size + mtime, hashing only the files whose stat changed); `workbench models verify NAME`
hashes everything. A file whose bytes changed is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from workbench.errors import ModelLoadError, UserError

MANIFEST = "manifest.json"
CHUNK = 1 << 20


def file_hashes(path: Path) -> tuple[str, str]:
    """(sha256, git blob sha1) in one pass: the hub gives sha256 for LFS files and the git oid for the rest."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            sha1.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest()


def sha256_file(path: Path) -> str:
    return file_hashes(path)[0]


def file_record(path: Path, sha256: str) -> dict:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(tmp, folder / MANIFEST)  # never a half-written manifest


def read_manifest(folder: Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelLoadError(f"{path}: no \"files\" table (not a workbench manifest)")
    return manifest


def _problem(folder: Path, name: str, record: dict, full: bool) -> str | None:
    """None when the file matches its record; otherwise what is wrong, in a few words."""
    path = folder / name
    try:
        st = path.stat()
    except OSError:
        return "missing"
    if st.st_size != record.get("size"):
        return f"size {st.st_size} bytes, expected {record.get('size')}"
    if not full and st.st_mtime_ns == record.get("mtime_ns"):
        return None
    if sha256_file(path) != record.get("sha256"):
        return "contents changed (sha256 differs from the manifest)"
    return None


def check_files(folder: Path, full: bool = False) -> list[str]:
    """Problems as 'path: what', empty when every file matches. Refreshes mtimes of files whose hash still matches."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return []
    problems, touched = [], False
    for name, record in sorted(manifest["files"].items()):
        problem = _problem(folder, name, record if isinstance(record, dict) else {}, full)
        if problem:
            problems.append(f"{folder / name}: {problem}")
        elif record.get("mtime_ns") != (folder / name).stat().st_mtime_ns:
            record["mtime_ns"] = (folder / name).stat().st_mtime_ns  # same bytes, new mtime (copied, touched)
            touched = True
    if touched:
        try:
            write_manifest(folder, manifest)
        except OSError:
            pass  # a read-only folder: we hash again next time
    return problems


def check_pulled_model(folder: Path) -> None:
    """Called by the loader: refuse a pulled model whose files no longer match what was downloaded."""
    problems = check_files(Path(folder))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelLoadError(f"{problems[0]}{more}; refusing to load. `workbench pull` fetches a clean copy")


def verify_model(folder: Path) -> list[str]:
    """Full hash of every file (`workbench models verify`)."""
    if read_manifest(folder) is None:
        raise UserError(f"{folder}: no {MANIFEST} (only pulled and imported models have recorded hashes)")
    return check_files(folder, full=True)

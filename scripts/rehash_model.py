"""Rewrite the `[files]` sha256 table of a shipped model's manifest.toml after a deliberate change to its
files (a new chat template, retrained weights); everything else in the manifest is kept.

    .venv/bin/python scripts/rehash_model.py models/r1-nano

Report cards in the model's `evals/` record the identity of the files they measured: after changing a
model file they are stale (`workbench evals` says so) until the model is evaluated again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.models.identity import folder_sha256
from workbench.models.manifest import SHIPPED_MANIFEST, read_manifest, rehash_shipped_manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a model folder with a manifest.toml")
    folder = parser.parse_args().folder
    if not (folder / SHIPPED_MANIFEST).is_file():
        parser.error(f"{folder / SHIPPED_MANIFEST}: no such file")
    before = {n: r["sha256"] for n, r in read_manifest(folder)["files"].items()}
    after = rehash_shipped_manifest(folder)
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            print(f"{name}: {(before.get(name) or '-')[:12]} -> {(after.get(name) or '-')[:12]}")
    print(f"{folder / SHIPPED_MANIFEST}: {len(after)} files; model identity (report cards' model_sha256) "
          f"{folder_sha256(folder)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Rewrite the `[files]` sha256 table of a shipped model's manifest.toml after a deliberate change to its
files (a new chat template, retrained weights); everything else in the manifest is kept.

    .venv/bin/python scripts/rehash_model.py models/r1-nano [--cards]

Report cards in the model's `evals/` record the identity of the files they measured: after changing a
model file they are stale (`workbench evals` says so) until the model is evaluated again. `--cards`
claims the change does not alter what they measured (e.g. a chat template that renders the same
prompts): the cards that described the files before get the new identity (only their hash fields change).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.eval.card import rebind_cards
from workbench.models.identity import combined_sha256, file_hashes, is_model_file
from workbench.models.manifest import SHIPPED_MANIFEST, read_manifest, rehash_shipped_manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a model folder with a manifest.toml")
    parser.add_argument("--cards", action="store_true",
                        help="also give the report cards of the files before the change the new identity")
    args = parser.parse_args()
    folder = args.folder
    if not (folder / SHIPPED_MANIFEST).is_file():
        parser.error(f"{folder / SHIPPED_MANIFEST}: no such file")
    before = {n: r["sha256"] for n, r in read_manifest(folder)["files"].items()}
    after = rehash_shipped_manifest(folder)
    old_files = {n: h for n, h in before.items() if is_model_file(n)}
    new_files = file_hashes(folder)
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            print(f"{name}: {(before.get(name) or '-')[:12]} -> {(after.get(name) or '-')[:12]}")
    print(f"{folder / SHIPPED_MANIFEST}: {len(after)} files; model identity (report cards' model_sha256) "
          f"{combined_sha256(old_files)[:12]} -> {combined_sha256(new_files)}")
    if args.cards:
        for path in rebind_cards(folder, old_files, new_files):
            print(f"{path}: now names the new identity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

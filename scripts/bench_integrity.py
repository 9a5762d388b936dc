"""Load-time integrity check of a pulled model: the cheap check (size + mtime per file against the hash
cache, what `load_model` runs) against hashing every file (`workbench models verify`), same folder, same run.

    .venv/bin/python scripts/bench_integrity.py [--mb 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from workbench.models.manifest import check_files, hashed_records, write_manifest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=512, help="size of the fake weights (split into 4 files)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WORKBENCH_HOME"] = str(Path(tmp) / "home")  # its own hash cache
        folder = Path(tmp) / "model"
        folder.mkdir()
        chunk = os.urandom(1 << 20)
        for i in range(4):
            with open(folder / f"model-{i}.safetensors", "wb") as f:
                for _ in range(args.mb // 4):
                    f.write(chunk)
        (folder / "config.json").write_text("{}")
        names = [p.name for p in folder.iterdir()]
        write_manifest(folder, {"files": hashed_records(folder, names)})
        cheap, full = [], []
        for _ in range(args.repeats):  # alternate, so machine load hits both alike
            t = time.perf_counter()
            assert check_files(folder) == []
            cheap.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert check_files(folder, full=True) == []
            full.append(time.perf_counter() - t)
    c, f = statistics.median(cheap), statistics.median(full)
    print(f"{args.mb} MB in 5 files, median of {args.repeats}: cheap check {c * 1000:.2f} ms, "
          f"full sha256 {f * 1000:.0f} ms ({args.mb / f:.0f} MB/s), full/cheap = {f / c:.0f}x")


if __name__ == "__main__":
    main()

"""`workbench doctor`: what this machine offers MLX. Apple specifics sit behind small probes."""

from __future__ import annotations

import json
import os
import sys


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _version(package: str) -> str:
    from importlib import metadata  # ~20 ms: only for this command, not every command's parser

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def distributed_backends() -> dict:
    import shutil

    import mlx.core as mx

    found = {}
    for backend in ("ring", "mpi", "jaccl", "nccl"):
        try:
            found[backend] = bool(mx.distributed.is_available(backend=backend))
        except Exception:  # noqa: BLE001 - older MLX without that backend name
            found[backend] = False
    found["mpirun on PATH"] = shutil.which("mpirun") is not None
    return found


def report() -> dict:
    import platform

    from workbench.blas import find_openblas, loaded_blas
    from workbench.machine import chip, memory_bytes

    info = {
        "platform": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": sys.version.split()[0],
        "chip": chip(),
        "memory_gb": round((memory_bytes() or 0) / 1e9, 1),
        "cpu_cores": os.cpu_count(),
        "workbench": _version("reasoning-workbench"),
        "mlx": _version("mlx"),
        "mlx-lm": _version("mlx-lm"),
        "textual": _version("textual"),
    }
    if sys.platform == "darwin":
        import mlx.core as mx

        info["metal"] = bool(mx.metal.is_available())
    else:
        info["blas"] = loaded_blas() or "mlx's bundled reference BLAS (slow)"
        if not loaded_blas():
            info["blas_hint"] = (
                f"OpenBLAS found at {find_openblas()} but not loaded; start MLX through `workbench` "
                "with WORKBENCH_NO_OPENBLAS unset" if find_openblas()
                else "install Debian's libopenblas0-pthread for ~30x faster matmul"
            )
    info["distributed"] = distributed_backends()
    return info


def main(args) -> int:
    info = report()
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in value.items())
        print(f"{key:>12}  {value}")
    return 0

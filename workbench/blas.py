"""Make MLX's CPU backend use OpenBLAS on Linux.

The mlx-cpu wheel links a reference BLAS (~5 GFLOP/s for fp32 matmul on our CI machines);
Debian's OpenBLAS preloaded in its place runs ~30x faster. A library can only be preloaded
before the process starts, so the `workbench` entry point re-executes itself once with
LD_PRELOAD set. Set WORKBENCH_NO_OPENBLAS=1 to turn this off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DISABLE_ENV = "WORKBENCH_NO_OPENBLAS"
_REEXEC_GUARD = "WORKBENCH_BLAS_REEXEC"

CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)


def find_openblas() -> str | None:
    for path in CANDIDATES:
        if Path(path).exists():
            return path
    return None


def loaded_blas(maps_file: str = "/proc/self/maps") -> str | None:
    """The BLAS shared library mapped into this process, if any (Linux only)."""
    try:
        text = Path(maps_file).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name = line.rsplit(" ", 1)[-1]
        if "openblas" in name or "libblas" in name or "mkl_rt" in name:
            return name
    return None


def preload_env(environ: dict, platform: str = sys.platform, library: str | None = None) -> dict | None:
    """The environment to re-execute with, or None when no re-exec is needed."""
    if platform != "linux" or environ.get(DISABLE_ENV) or environ.get(_REEXEC_GUARD):
        return None
    library = library or find_openblas()
    if library is None:
        return None
    preload = environ.get("LD_PRELOAD", "")
    if library in preload.split() or library in preload.split(":"):
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = f"{library} {preload}".strip()
    env[_REEXEC_GUARD] = "1"
    return env


def reexec_with_openblas(argv: list[str]) -> None:
    """Replace this process with one that has OpenBLAS preloaded (no-op when not needed)."""
    env = preload_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "workbench", *argv], env)

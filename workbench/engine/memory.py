"""Memory: the process's peak resident size, and Apple-specific behaviour behind one small seam
(tested with a fake `mx` on Linux).

On Metal, mlx-lm raises the wired-memory limit to the GPU's recommended working set while it
generates, so large weights stay resident instead of being paged; we do the same around each
response (without mlx-lm's print to stdout, which would garble the TUI). Elsewhere: a no-op.
"""

from __future__ import annotations

import contextlib
import resource
import sys


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB (1e9 bytes, as every `_gb` in the project). On Linux
    from /proc (VmHWM): ru_maxrss keeps the parent's figure across fork and exec, so a child started by
    a big app would report the app's."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024 / 1e9
    except (OSError, StopIteration, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return peak * (1 if sys.platform == "darwin" else 1024) / 1e9


@contextlib.contextmanager
def wired_limit(mx=None):
    if mx is None:
        import mlx.core as mx
    if not mx.metal.is_available():
        yield
        return
    old = mx.set_wired_limit(mx.device_info()["max_recommended_working_set_size"])
    try:
        yield
    finally:
        mx.synchronize()  # never change the limit under a running async eval
        mx.set_wired_limit(old)

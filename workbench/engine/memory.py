"""Apple-specific memory behaviour, behind one small seam (tested with a fake `mx` on Linux).

On Metal, mlx-lm raises the wired-memory limit to the GPU's recommended working set while it
generates, so large weights stay resident instead of being paged; we do the same around each
response (without mlx-lm's print to stdout, which would garble the TUI). Elsewhere: a no-op.
"""

from __future__ import annotations

import contextlib


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

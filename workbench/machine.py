"""Facts about this machine that several layers need (memory, chip). Apple specifics sit behind
`sysctl`, which tests replace."""

from __future__ import annotations

import os
import platform
import subprocess
import sys


def sysctl(name: str) -> str | None:
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def memory_bytes() -> int | None:
    """Physical memory, or None when the platform will not say."""
    if sys.platform == "darwin":
        value = sysctl("hw.memsize")
        return int(value) if value and value.isdigit() else None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def chip() -> str:
    if sys.platform == "darwin":
        return sysctl("machdep.cpu.brand_string") or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine() or "unknown"

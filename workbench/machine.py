"""Facts about this machine that several layers need (memory, chip). Apple specifics sit behind
`sysctl`, which tests replace."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading


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


def lower_thread_priority(by: int) -> int | None:
    """Linux: raise this thread's nice value by `by` (threads it starts from then on inherit it), so
    where cores are few it waits for busier threads instead of stalling them. Returns the value to
    restore, or None where nothing changed (elsewhere: on a Mac, generation runs on the GPU)."""
    if sys.platform != "linux":
        return None
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(before + by, 19))
    except OSError:
        return None
    return before


def restore_thread_priority(before: int | None) -> None:
    if before is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), before)
        except OSError:  # lowering nice again needs privileges; the caller is ending anyway
            pass

"""After a test that ran sandboxes: no sandbox process and no sandbox temp folder is left.

A sandbox process, seen from the host: bwrap itself, a process in another PID namespace than
ours, or (root) one running as a sandbox uid. Only ones that appeared during the test count (a
neighbour's may run meanwhile on a shared machine; none do in CI).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from workbench.verify.sandbox import SANDBOX_UIDS, TEMP_PREFIX


def sandbox_processes() -> set[tuple[int, str]]:
    mine = os.readlink("/proc/self/ns/pid")
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            owner = os.stat(f"/proc/{entry}").st_uid
            namespace = os.readlink(f"/proc/{entry}/ns/pid")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, state = stat[stat.find("(") + 1: stat.rfind(")")], stat[stat.rfind(")") + 2:][:1]
        if state != "Z" and (owner >= SANDBOX_UIDS or name == "bwrap" or namespace != mine):
            found.add((int(entry), f"{name} uid={owner}"))
    return found


def temp_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*")}


@pytest.fixture
def no_sandbox_leftovers():
    if not os.path.isdir("/proc/self/ns"):
        yield
        return
    processes, folders = sandbox_processes(), temp_folders()
    yield
    deadline = time.monotonic() + 15  # a sandbox killed with its caller dies asynchronously
    while (left := sandbox_processes() - processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"sandbox processes left behind: {sorted(left)}"
    assert not temp_folders() - folders, "sandbox temp folders left behind"

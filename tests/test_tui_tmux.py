"""The real app in a real terminal: `.venv/bin/workbench` in tmux on the embedded model (r1-nano).

Types a prompt, reads the screen with `tmux capture-pane`, quits with ctrl+q. The waits are safety
limits for a stuck app, not timing assertions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKBENCH = ROOT / ".venv" / "bin" / "workbench"

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/test installs it as root)"),
    pytest.mark.skipif(not WORKBENCH.exists(), reason=".venv/bin/workbench is missing (run scripts/test once)"),
]


class Tmux:
    def __init__(self, socket: str) -> None:
        self.socket = socket

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "app")

    def wait_for(self, text: str, limit: float = 60.0) -> str:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")


@pytest.fixture
def tmux(tmp_path):
    t = Tmux(f"workbench-test-{os.getpid()}")
    yield t
    t("kill-server")  # our own server (private socket) only


def test_real_app_answers_in_tmux(tmux, workbench_home):
    env = f"WORKBENCH_HOME={workbench_home} TERM=xterm-256color"
    tmux("new-session", "-d", "-s", "app", "-x", "120", "-y", "32", f"env {env} {WORKBENCH}")
    tmux.wait_for("ready")  # the embedded model loaded in the background
    screen = tmux.screen()
    assert "Thinking" in screen and "Answer" in screen and "r1-nano" in screen
    tmux("send-keys", "-t", "app", "-l", "What is 12+30?")
    tmux("send-keys", "-t", "app", "Enter")
    screen = tmux.wait_for("final answer")
    assert "⟦42⟧" in screen  # \boxed{42} rendered as Unicode, and framed below
    assert "thought for" in screen and "stop" in screen
    assert "\\boxed" not in screen
    tmux("send-keys", "-t", "app", "C-q")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "app" in tmux("list-sessions"):
        time.sleep(0.2)
    assert "app" not in tmux("list-sessions")  # the app quit cleanly, its session ended

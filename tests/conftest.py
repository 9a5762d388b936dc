"""Shared fixtures. Nothing here downloads anything: models are made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKED = "{a}+{b}: ones first, then tens. {a}+{b}={c}.</think>The answer is \\boxed{{{c}}}."


@pytest.fixture
def anyio_backend():
    """Async tests (the app's pilot tests) run on asyncio."""
    return "asyncio"


@pytest.fixture(autouse=True)
def workbench_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own empty user data directory."""
    home = tmp_path / "workbench-home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random tiny Qwen2 model folder (byte-level tokenizer, chat template). Read-only: copy to change."""
    from workbench.engine.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-random", seed=0)


@pytest.fixture(scope="session")
def taught_model(tmp_path_factory) -> Path:
    """A tiny model taught to answer 'What is 12+30?' with thinking, then `The answer is \\boxed{42}.`"""
    from workbench.engine.tiny import make_tiny_model, teach

    folder = make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-taught", seed=1)
    teach(folder, [("What is 12+30?", WORKED.format(a=12, b=30, c=42))], steps=200)
    (folder / "profile.toml").write_text("temperature = 0.0\nmax_tokens = 200\n")
    return folder


def workbench_env(**extra) -> dict:
    """Environment for running `workbench` in a subprocess."""
    env = dict(os.environ)
    env.update(extra)
    return env

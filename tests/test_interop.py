"""The embedded model outside the workbench, and the workbench against a server no one here wrote:
r1-nano's chat template opens `<think>` like the real R1 distills' templates, so mlx-lm's own
`generate` and `mlx_lm.server` answer as `workbench run` does; `workbench run --endpoint` against
`mlx_lm.server` serving r1-nano splits thinking and answer exactly as the local engine does."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, workbench_env

NANO = ROOT / "models" / "r1-nano"
QUESTION = "What is 1234 + 5678?"


def nano_template_prompt() -> str:
    from jinja2 import Template

    template = json.loads((NANO / "tokenizer_config.json").read_text())["chat_template"]
    return Template(template).render(messages=[{"role": "user", "content": QUESTION}], add_generation_prompt=True)


def test_r1_nano_template_opens_thinking_and_our_prompt_does_not_open_it_twice():
    from workbench.engine.events import Message
    from workbench.engine.prompt import build_prompt

    class Tokenizer:
        def apply_chat_template(self, messages, add_generation_prompt, tokenize):
            from jinja2 import Template

            template = json.loads((NANO / "tokenizer_config.json").read_text())["chat_template"]
            return Template(template).render(messages=messages, add_generation_prompt=add_generation_prompt)

    assert nano_template_prompt() == f"<|user|>{QUESTION}<|assistant|><think>\n"
    ours = build_prompt(Tokenizer(), (Message("user", QUESTION),), force_think=True)
    assert ours == nano_template_prompt() and ours.count("<think>") == 1


def test_r1_nano_manifest_hashes_are_the_shipped_files():
    files = tomllib.loads((NANO / "manifest.toml").read_text())["files"]
    shipped = {p.name for p in NANO.iterdir() if p.is_file() and p.name not in ("manifest.toml", "README.md")}
    assert set(files) == shipped
    for name, sha in files.items():
        assert hashlib.sha256((NANO / name).read_bytes()).hexdigest() == sha, name


def run_json(*args: str) -> tuple[str, str, dict]:
    """`workbench run --json --temp 0 --no-save QUESTION ...`: (thinking, answer, stats)."""
    out = subprocess.run([sys.executable, "-m", "workbench", "run", QUESTION, "--json", "--temp", "0", "--no-save", *args],
                         capture_output=True, text=True, timeout=180, env=workbench_env())
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[-1]["type"] == "done", events[-1]
    text = {kind: "".join(e["text"] for e in events if e["type"] == kind) for kind in ("think", "answer")}
    return text["think"], text["answer"], events[-1]["stats"]


@pytest.fixture(scope="module")
def local_answer():
    return run_json()


def test_mlx_lm_generate_answers_like_workbench_run(local_answer):
    """mlx-lm's own CLI on the shipped folder, its chat template applied, greedy."""
    thinking, answer, _ = local_answer
    assert "\\boxed{6912}" in answer
    out = subprocess.run([sys.executable, "-m", "mlx_lm", "generate", "--model", str(NANO), "--prompt", QUESTION,
                          "--max-tokens", "300", "--temp", "0"], capture_output=True, text=True, timeout=180,
                         env=workbench_env())
    assert out.returncode == 0, out.stderr
    assert "\\boxed{6912}" in out.stdout and "1889" not in out.stdout
    assert thinking.strip() in out.stdout  # the same trace, token for token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_run_endpoint_against_mlx_lm_server_agrees_with_the_local_engine(local_answer, tmp_path):
    port = free_port()
    log = open(tmp_path / "server.log", "w+")
    server = subprocess.Popen([sys.executable, "-m", "mlx_lm", "server", "--model", str(NANO), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=workbench_env(),
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # bounded wait for the server to listen
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (log.seek(0), log.read())[1]
                time.sleep(0.3)
        thinking, answer, stats = run_json("--endpoint", f"http://127.0.0.1:{port}", "--max-tokens", "300")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        log.close()
    local_thinking, local_answer_text, local_stats = local_answer
    assert (thinking.strip(), answer.strip()) == (local_thinking.strip(), local_answer_text.strip())
    assert "\\boxed{6912}" in answer
    assert stats["thinking_tokens"] > 0 and stats["answer_tokens"] > 0 and stats["thinking_closed"]

"""`workbench pull` against a fake hub: download, manifest, tamper refusal, revisions, fit check, resume.

The fake Hugging Face hub on 127.0.0.1: the few endpoints `snapshot_download` calls (huggingface_hub 2.x).

- GET  /api/models/{repo}[/revision/{rev}]      -> {"id", "sha", "siblings"}        (repo_info)
- GET  /api/models/{repo}/tree/{commit}         -> [{"type", "path", "size", "oid", "lfs"}]  (list_repo_tree)
- HEAD /{repo}/resolve/{rev}/{path}             -> X-Repo-Commit, ETag / X-Linked-Etag, sizes
- GET  /{repo}/resolve/{rev}/{path}             -> the bytes (Range honoured)

Point HF_ENDPOINT at `hub.url`. Tests can corrupt what a file serves (`corrupt`) or make a GET stall
half way (`stall`) to kill a download mid-file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import os
import subprocess
import sys
import time

import pytest

from workbench.errors import ModelLoadError, UserError

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}  # repo -> {"refs": {name: commit}, "commits": {commit: {path: bytes}}}
        self.corrupt: set[str] = set()  # paths served with one byte flipped (hashes still announce the original)
        self.stall: dict[str, int] = {}  # path -> bytes to send before hanging
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.gets: Counter = Counter()  # path -> completed GETs of file bytes
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a killed client resets its connection
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def add_commit(self, repo: str, folder: Path, refs: tuple[str, ...] = ("main",), extra: dict | None = None) -> str:
        """Publish every file of `folder` (plus `extra` {path: bytes}) as a new commit; returns its hash."""
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        files.update(extra or {})
        commit = hashlib.sha1(repr(sorted((k, git_oid(v)) for k, v in files.items())).encode() + repo.encode()).hexdigest()
        store = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
        store["commits"][commit] = files
        for ref in refs:
            store["refs"][ref] = commit
        return commit

    def _resolve(self, repo: str, rev: str) -> str | None:
        store = self.repos.get(repo)
        if store is None:
            return None
        return rev if rev in store["commits"] else store["refs"].get(rev)

    def _handler(hub):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if "Content-Length" not in (headers or {}):
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _error(self, status: int, code: str, head: bool = False):
                self._send(status, json.dumps({"error": code}).encode(), {"X-Error-Code": code}, head)

            def do_HEAD(self):
                self._route(head=True)

            def do_GET(self):
                self._route(head=False)

            def _route(self, head: bool):
                parts = [unquote(p) for p in urlparse(self.path).path.split("/")[1:]]
                if parts[:2] == ["api", "models"] and len(parts) in (4, 6):
                    kind, rev = (parts[4], parts[5]) if len(parts) == 6 else ("revision", "main")
                    return self._api(f"{parts[2]}/{parts[3]}", kind, rev, head)
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self._file(f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
                self._error(404, "EntryNotFound", head)

            def _api(self, repo, kind, rev, head):
                if repo not in hub.repos:
                    return self._error(404, "RepoNotFound", head)
                commit = hub._resolve(repo, rev)
                if commit is None:
                    return self._error(404, "RevisionNotFound", head)
                files = hub.repos[repo]["commits"][commit]
                if kind == "revision":
                    body = {"id": repo, "sha": commit, "siblings": [{"rfilename": p} for p in files]}
                else:
                    body = []
                    for path, data in files.items():
                        entry = {"type": "file", "path": path, "size": len(data), "oid": git_oid(data)}
                        if path.endswith(LFS_SUFFIXES):
                            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                        body.append(entry)
                self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)

            def _file(self, repo, rev, path, head):
                commit = hub._resolve(repo, rev)
                if commit is None:
                    return self._error(404, "RevisionNotFound" if repo in hub.repos else "RepoNotFound", head)
                data = hub.repos[repo]["commits"][commit].get(path)
                if data is None:
                    return self._error(404, "EntryNotFound", head)
                headers = {"X-Repo-Commit": commit, "Accept-Ranges": "bytes"}
                if path.endswith(LFS_SUFFIXES):
                    headers.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data)),
                                    "ETag": f'"{git_oid(data)}"'})
                else:
                    headers["ETag"] = f'"{git_oid(data)}"'
                if path in hub.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start, status = 0, 200
                if not head and self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                body = data[start:]
                headers["Content-Length"] = str(len(body))
                if head:
                    return self._send(200, b"", headers, head=True)
                if path in hub.stall:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body[: hub.stall[path]])
                    self.wfile.flush()
                    hub.stalled.set()
                    hub.release.wait(60)
                    self.close_connection = True
                    return
                self._send(status, body, headers)
                hub.gets[path] += 1

        return Handler


REPO = "acme/tiny-r1"


@pytest.fixture
def hub(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.commit = hub.add_commit(REPO, tiny_model, extra={"README.md": b"# tiny\n", "modeling_evil.py": b"import os\n"})
        yield hub


def _pull(model=REPO, **kw):
    from workbench.models.pull import pull

    return pull(model, **kw)


def test_pull_records_manifest_links_files_and_loads(hub, tiny_model, workbench_home):
    from workbench.engine.loader import load_model
    from workbench.models.local import list_local, resolve_model
    from workbench.models.identity import file_sha256
    from workbench.models.manifest import read_manifest

    folder = _pull()
    assert folder == workbench_home / "models" / "tiny-r1"
    manifest = read_manifest(folder)
    assert manifest["repo"] == REPO and manifest["commit"] == hub.commit and manifest["revision"] == "main"
    # only what mlx-lm needs: no README, never Python code from the hub
    assert sorted(manifest["files"]) == sorted(p.name for p in tiny_model.iterdir())
    for name, record in manifest["files"].items():
        assert record["sha256"] == file_sha256(tiny_model / name)
    assert manifest["files"]["model.safetensors"]["lfs_sha256"] == record_sha(tiny_model / "model.safetensors")
    assert hub.gets["modeling_evil.py"] == 0 and hub.gets["README.md"] == 0
    assert resolve_model("tiny-r1") == folder.resolve()
    assert [m.source for m in list_local() if m.name == "tiny-r1"] == ["user"]
    loaded = load_model(folder)
    assert loaded.info.name == "tiny-r1"


def record_sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tampered_file_is_refused_on_load_and_by_verify(hub):
    from workbench.engine.loader import load_model
    from workbench.models.manifest import check_against_manifest, verify_model

    folder = _pull()
    weights = (folder / "model.safetensors").resolve()  # the blob in the HF cache
    os.chmod(weights, 0o644)
    data = bytearray(weights.read_bytes())
    st = weights.stat()
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="model.safetensors: contents changed"):
        load_model(folder)
    # same size and mtime: the cheap check cannot see it, the full verify does
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    check_against_manifest(folder)
    assert any("model.safetensors" in p for p in verify_model(folder))
    with pytest.raises(ModelLoadError, match="model.safetensors: contents changed"):  # what verify saw, the loader knows
        check_against_manifest(folder)
    weights.write_bytes(bytes(data[:-1]))
    with pytest.raises(ModelLoadError, match="size"):
        check_against_manifest(folder)
    weights.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        check_against_manifest(folder)


def test_touched_but_unchanged_file_still_loads(hub):
    from workbench.models.manifest import check_against_manifest, read_manifest

    folder = _pull()
    config = (folder / "config.json").resolve()
    os.utime(config, ns=(0, 1_000_000_000))
    check_against_manifest(folder)  # hashed again, same bytes
    assert read_manifest(folder)["files"]["config.json"]["mtime_ns"] == 1_000_000_000


def test_hash_mismatch_is_refused_and_nothing_recorded(hub, workbench_home, tmp_path):
    hub.corrupt.add("model.safetensors")
    with pytest.raises(UserError, match="model.safetensors: downloaded bytes do not match the hub's hash"):
        _pull()
    assert not (workbench_home / "models" / "tiny-r1").exists()
    blobs = list((tmp_path / "hf-cache").rglob("blobs/*"))
    assert blobs and not any(b.name == record_sha_bytes(hub) for b in blobs)  # the bad copy is gone
    hub.corrupt.clear()
    assert (_pull() / "manifest.json").exists()  # a clean pull afterwards works


def record_sha_bytes(hub):
    data = hub.repos[REPO]["commits"][hub.commit]["model.safetensors"]
    return hashlib.sha256(data).hexdigest()


def test_revision_pinning(hub, tmp_path):
    from workbench.engine.tiny import make_tiny_model
    from workbench.models.manifest import read_manifest

    old = hub.commit
    newer = make_tiny_model(tmp_path / "newer", seed=7)
    new = hub.add_commit(REPO, newer, refs=("main", "v2"))
    hub.repos[REPO]["refs"]["v1"] = old
    assert new != old
    assert read_manifest(_pull())["commit"] == new
    pinned = _pull(revision=old, name="tiny-old")
    manifest = read_manifest(pinned)
    assert manifest["commit"] == old and manifest["revision"] == old
    old_weights = hub.repos[REPO]["commits"][old]["model.safetensors"]
    assert (pinned / "model.safetensors").read_bytes() == old_weights
    assert read_manifest(_pull(revision="v1", name="tiny-v1"))["commit"] == old
    with pytest.raises(UserError, match="no revision 'nope'"):
        _pull(revision="nope")
    with pytest.raises(UserError, match="no such model"):
        _pull("acme/missing")


def test_name_clash_refused_before_download(hub, tiny_model, workbench_home):
    from workbench.models.local import resolve_model

    hub.add_commit("other/tiny-r1", tiny_model)
    _pull()
    with pytest.raises(UserError, match="already holds acme/tiny-r1; choose another --name"):
        _pull("other/tiny-r1")
    assert hub.gets["model.safetensors"] == 1  # the clash was found before downloading
    assert _pull("other/tiny-r1", name="tiny-other").name == "tiny-other"
    (workbench_home / "models" / "hand-made").mkdir()
    with pytest.raises(UserError, match="exists and was not pulled"):
        _pull(name="hand-made")
    with pytest.raises(UserError, match="in the catalog but not on this machine: `workbench pull r1-distill-qwen-7b-4bit`"):
        resolve_model("r1-distill-qwen-7b-4bit")


def test_refuses_when_it_will_not_fit_unless_forced(hub, workbench_home, tiny_model):
    from workbench.models.pull import plan_pull

    config = json.loads((tiny_model / "config.json").read_text())
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    kv = config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * 2 * 2 * 32768
    assert plan_pull(REPO).memory_needed == (tiny_model / "model.safetensors").stat().st_size + kv + 1_000_000_000
    with pytest.raises(UserError, match="needs .* of memory .*--force"):
        _pull(memory_bytes=1_000_000_000)
    with pytest.raises(UserError, match="more disk"):
        _pull(memory_bytes=64_000_000_000, disk_bytes=1000)
    assert not (workbench_home / "models").exists()
    assert (_pull(force=True, memory_bytes=1_000_000_000, disk_bytes=1000) / "manifest.json").exists()


def test_catalog_name_pulls_mlx_community_repo_with_profile_and_claims(hub, tiny_model):
    from workbench.engine.profiles import load_profile
    from workbench.models.manifest import read_manifest

    hub.add_commit("mlx-community/DeepSeek-R1-Distill-Qwen-1.5B-4bit", tiny_model)
    folder = _pull("r1-distill-qwen-1.5b-4bit")
    assert folder.name == "r1-distill-qwen-1.5b-4bit"
    assert read_manifest(folder)["catalog"] == "r1-distill-qwen-1.5b-4bit"
    profile = load_profile(folder)
    assert profile.claims["aime24"] == 28.9 and profile.claims["math500"] == 83.9
    assert profile.temperature == 0.6 and profile.top_p == 0.95
    with pytest.raises(UserError, match="two or more machines"):
        _pull("r1-4bit")


def test_cli_pull_and_errors(hub, capsys):
    from workbench.cli import main

    assert main(["pull", REPO, "--name", "via-cli"]) == 0
    assert "pulled via-cli" in capsys.readouterr().out
    assert main(["models"]) == 0
    assert any(" via-cli " in line and " pulled " in line for line in capsys.readouterr().out.splitlines())
    assert main(["pull", "not-a-thing"]) == 2
    assert "neither a catalog model" in capsys.readouterr().err


def test_progress_callback_sees_every_byte(hub):
    from workbench.models.pull import pull

    seen = []
    pull(REPO, on_progress=lambda done, total: seen.append((done, total)))
    # config.json came earlier, when the plan read the architecture for the memory check
    size = sum(len(v) for k, v in hub.repos[REPO]["commits"][hub.commit].items() if k not in ("README.md", "modeling_evil.py", "config.json"))
    assert seen and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_resume_after_killed_download(hub, tmp_path, workbench_home, monkeypatch):
    """kill -9 in the middle of the weights: the next pull fetches only what was not complete."""
    from workbench.models.manifest import read_manifest

    weights = hub.repos[REPO]["commits"][hub.commit]["model.safetensors"]
    hub.stall["model.safetensors"] = len(weights) // 2
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, "-c", f"from workbench.models.pull import pull; pull({REPO!r})"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert hub.stalled.wait(60), proc.stderr.read().decode() if proc.poll() is not None else "no download started"
        snapshot = tmp_path / "hf-cache" / "models--acme--tiny-r1" / "snapshots" / hub.commit
        small = ("config.json", "tokenizer.json", "tokenizer_config.json")
        deadline = time.monotonic() + 30
        while not all((snapshot / n).exists() for n in small) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert not (workbench_home / "models" / "tiny-r1").exists()
    before = dict(hub.gets)
    assert before.get("model.safetensors", 0) == 0 and before["config.json"] == 1
    del hub.stall["model.safetensors"]
    hub.release.set()
    partials = list((tmp_path / "hf-cache").rglob("*.incomplete"))
    assert partials  # what the killed process left
    monkeypatch.setattr("workbench.models.pull.STALE_PARTIAL_SECONDS", -1)
    folder = _pull()
    assert not any(p.exists() for p in partials)  # cleaned up
    assert read_manifest(folder)["files"]["model.safetensors"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert all(hub.gets[n] == before[n] == 1 for n in small)  # complete files are not downloaded again
    assert hub.gets["model.safetensors"] == 1


def test_the_fit_check_counts_the_kv_cache_at_the_context_and_bits_asked(hub, workbench_home, tiny_model, capsys):
    from workbench.cli import main
    from workbench.models.catalog import config_kv_cache_bytes
    from workbench.models.pull import check_fit, plan_pull

    config = json.loads((tiny_model / "config.json").read_text())
    weights = (tiny_model / "model.safetensors").stat().st_size
    default, small = plan_pull(REPO), plan_pull(REPO, context=8192, kv_bits=4)
    assert (default.context, default.kv_bits) == (32768, 0)
    assert small.memory_needed == weights + config_kv_cache_bytes(config, 8192, 4) + 1_000_000_000
    assert small.memory_needed < default.memory_needed
    between = int((small.memory_needed + default.memory_needed) / 2 / 0.75)  # usable: 75% of it
    with pytest.raises(UserError, match=r"at 32k context with an fp16 KV cache.*--force"):
        check_fit(default, between, 10**12)
    check_fit(small, between, 10**12)  # fits
    with pytest.raises(UserError, match=r"at 8k context with a 4-bit KV cache"):
        check_fit(small, int(between * 0.9), 10**12)

    assert main(["pull", REPO, "--name", "short", "--context", "0"]) == 2
    assert "--context must be 1 token or more" in capsys.readouterr().err
    assert main(["pull", REPO, "--name", "short", "--context", "8192", "--kv-bits", "4"]) == 0
    assert "pulled short" in capsys.readouterr().out

"""Model files as an attacker or an unlucky user leaves them, and the one model identity.

Crashes are tried in a subprocess (`workbench ...`): one line, exit 2, no traceback, nothing lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.models import identity

WORKBENCH = [sys.executable, "-m", "workbench"]


def workbench(*args, timeout=180):
    return subprocess.run([*WORKBENCH, *args], capture_output=True, text=True, timeout=timeout)


def one_line_error(out, *fragments):
    """Exit 2, a single `workbench: error:` line holding every fragment, no traceback."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("workbench: error: "), out.stderr
    assert "Traceback" not in out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def imported(tiny_model, workbench_home):
    """A user model with a manifest.json as `workbench import` leaves it."""
    from workbench.models.manifest import hashed_records, write_manifest

    folder = workbench_home / "models" / "mine"
    shutil.copytree(tiny_model, folder)
    write_manifest(folder, {"source": "gguf", "gguf": "/nowhere/mine.gguf",
                            "files": hashed_records(folder, [p.name for p in identity.model_files(folder)])})
    return folder


def tiny_gguf(path: Path, block_count: int = 1, embedding_length: int = 8) -> Path:
    """A small llama GGUF that imports (one block of tensors, whatever block_count says; a 4-token vocabulary)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["a", "b", "ab", "<|end|>"])
    w.add_token_merges(["a b"])
    w.add_eos_token_id(3)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    w.add_block_count(block_count)
    w.add_context_length(64)
    w.add_embedding_length(embedding_length)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(2)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(8, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def flip_last_byte_keeping_size_and_mtime(path: Path) -> bytes:
    """What a careless tool (or an attacker) can do: other bytes, same size and mtime. Returns the new bytes."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


# ---- one identity ------------------------------------------------------------------------------

def test_identity_hashes_every_model_file_once_and_a_fresh_hash_wins(tiny_model, tmp_path, workbench_home):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    (folder / "README.md").write_text("not the model")
    files = identity.file_hashes(folder)
    assert files == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in folder.iterdir() if p.suffix in (".json", ".safetensors")}
    assert identity.folder_sha256(folder) == identity.combined_sha256(files)
    cache = json.loads((workbench_home / "cache" / "sha256.json").read_text())
    assert str((folder / "model.safetensors").resolve()) in cache
    # same size and mtime, other bytes: the cache cannot see it; a fresh hash does, and is remembered
    weights = folder / "model.safetensors"
    data = flip_last_byte_keeping_size_and_mtime(weights)
    assert identity.file_sha256(weights) == files["model.safetensors"]
    assert identity.file_sha256(weights, fresh=True) == hashlib.sha256(data).hexdigest()
    assert identity.file_hashes(folder)["model.safetensors"] == hashlib.sha256(data).hexdigest()
    assert identity.folder_sha256(tmp_path / "nope") is None and identity.file_hashes(None) == {}


def test_loading_hashes_the_identity_so_recording_does_not(tiny_model, tmp_path, workbench_home):
    from workbench.engine.loader import load_model

    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    load_model(folder)
    cache = json.loads((workbench_home / "cache" / "sha256.json").read_text())
    for path in identity.model_files(folder):
        assert cache[str(path.resolve())][2] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_a_session_of_run_carries_the_model_hash_of_a_report_card(taught_model, tmp_path, workbench_home):
    from workbench.eval.runner import EvalOptions, run_eval
    from workbench.sessions import Store

    folder = tmp_path / "taught"
    shutil.copytree(taught_model, folder)
    out = workbench("run", "--json", "What is 12+30?", "--model", str(folder))
    assert out.returncode == 0, out.stderr
    suite = tmp_path / "one.jsonl"
    suite.write_text(json.dumps({"question": "12+30", "answer": "42"}) + "\n")
    spec = tmp_path / "one.toml"
    spec.write_text(f'name = "one"\nfile = "{suite}"\nprompt_template = "What is {{question}}?"\nverifier = "math"\n')
    card, _ = run_eval(EvalOptions(suite=str(spec), model=str(folder)), progress_stream=open(os.devnull, "w"))
    with Store.open() as store:
        reply = store.session("last")["turns"][1]
    assert reply["model_hash"] == card["model_sha256"] == identity.folder_sha256(folder)
    assert card["model_files"] == identity.file_hashes(folder)
    weights = f"weights {card['model_sha256'][:12]}"  # which weights produced what, as both listings say it
    shown, listed = workbench("sessions", "show", "last"), workbench("evals", str(folder))
    assert weights in shown.stdout and weights in listed.stdout, shown.stdout + listed.stdout


def test_shipped_model_verifies_against_manifest_toml_and_its_cards_stay_fresh(workbench_home):
    from workbench.models.local import resolve_model

    folder = resolve_model("r1-nano")
    out = workbench("models", "verify", "r1-nano")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "manifest.toml" in out.stdout and "match" in out.stdout
    cards = {p: json.loads(p.read_text()) for p in sorted((folder / "evals").glob("*.json"))}
    before = {p: p.read_bytes() for p in cards}
    current = [p for p, c in cards.items() if c["model_sha256"] == identity.folder_sha256(folder)]
    assert current  # the shipped weights' own cards carry the identity
    out = workbench("evals", "r1-nano", "--json")
    assert out.returncode == 0, out.stderr
    rows = {Path(r["file"]): r for r in json.loads(out.stdout)}
    for path, card in cards.items():
        assert rows[path]["stale"] is (path not in current), path  # older weights' cards stay stale
    assert {p: p.read_bytes() for p in cards} == before  # nothing written inside the package


def test_a_changed_shipped_file_is_refused_until_the_manifest_is_rehashed(tmp_path):
    import tomllib

    from workbench.engine.loader import load_model
    from workbench.errors import ModelLoadError
    from workbench.models.local import resolve_model
    from workbench.models.manifest import rehash_shipped_manifest, verify_model

    folder = tmp_path / "r1-nano"
    shutil.copytree(resolve_model("r1-nano"), folder)
    before = tomllib.loads((folder / "manifest.toml").read_text())
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["chat_template"] += "{# changed #}"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert verify_model(folder) == [f"{folder / 'tokenizer_config.json'}: contents changed (sha256 differs from manifest.toml)"]
    with pytest.raises(ModelLoadError, match="tokenizer_config.json: contents changed.*rehash_model.py"):
        load_model(folder)
    files = rehash_shipped_manifest(folder)
    after = tomllib.loads((folder / "manifest.toml").read_text())
    assert verify_model(folder) == []
    assert files["tokenizer_config.json"] == hashlib.sha256((folder / "tokenizer_config.json").read_bytes()).hexdigest()
    assert after["files"] == files and set(files) == set(before["files"])
    assert {k: v for k, v in after.items() if k != "files"} == {k: v for k, v in before.items() if k != "files"}
    load_model(folder)


def test_rehash_script_can_carry_the_cards_over_a_change_that_does_not_alter_them(tmp_path):
    from workbench.models.local import resolve_model

    folder = tmp_path / "r1-nano"
    shutil.copytree(resolve_model("r1-nano"), folder)
    old_sha = identity.folder_sha256(folder)
    before = {p: p.read_text() for p in (folder / "evals").iterdir()}
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": config["chat_template"] + " "}))
    new_sha = identity.folder_sha256(folder)
    script = Path(__file__).resolve().parent.parent / "scripts" / "rehash_model.py"
    out = subprocess.run([sys.executable, str(script), str(folder), "--cards"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{old_sha[:12]} -> {new_sha}" in out.stdout
    rebound = 0
    for path, text in before.items():
        now = path.read_text()
        if old_sha not in text:
            assert now == text  # cards of other weights are not touched
            continue
        rebound += 1
        if path.suffix == ".json":
            was, card = json.loads(text), json.loads(now)
            assert card["model_sha256"] == new_sha and card["model_files"] == identity.file_hashes(folder)
            assert {k: v for k, v in card.items() if k not in ("model_sha256", "model_files")} == \
                {k: v for k, v in was.items() if k not in ("model_sha256", "model_files")}
        else:
            changed = [(a, b) for a, b in zip(text.splitlines(), now.splitlines()) if a != b]
            assert len(text.splitlines()) == len(now.splitlines()) and len(changed) == 2  # the sha256 row, the file row
            assert all(old_sha in a or "tokenizer_config.json" in a for a, _ in changed)
    current = [p for p, text in before.items() if p.suffix == ".json" and json.loads(text)["model_sha256"] == old_sha]
    assert current and rebound == 2 * len(current)  # the cards of the shipped files, .json and .md
    out = subprocess.run([*WORKBENCH, "evals", str(folder), "--json"], capture_output=True, text=True, timeout=120)
    rows = json.loads(out.stdout)
    assert {r["file"]: r["stale"] for r in rows} == {
        str(p): p not in current for p in before if p.suffix == ".json"}  # fresh: exactly the rebound ones


def test_the_shipped_manifest_matches_the_shipped_files():
    """If this fails after a deliberate change to r1-nano: `python scripts/rehash_model.py models/r1-nano`."""
    from workbench.models.local import resolve_model
    from workbench.models.manifest import check_files

    assert check_files(resolve_model("r1-nano"), full=True) == []


# ---- manifests cover what the loader reads -----------------------------------------------------

@pytest.mark.parametrize("added", ["model-evil.safetensors", "chat_template.jinja"])
def test_a_model_file_added_after_the_manifest_is_refused(imported, added):
    if added.endswith(".safetensors"):
        shutil.copy(imported / "model.safetensors", imported / added)
    else:
        (imported / added).write_text("{{ 'evil' }}")
    out = workbench("models", "verify", "mine")
    assert out.returncode == 1
    assert f"{imported / added}: not in manifest.json" in out.stdout and "will not load" in out.stdout
    one_line_error(workbench("run", "hi", "--model", "mine"), str(imported / added), "not in manifest.json")


def test_bytes_changed_under_the_same_size_and_mtime_verify_and_run_agree(imported):
    weights = imported / "model.safetensors"
    flip_last_byte_keeping_size_and_mtime(weights)
    out = workbench("models", "verify", "mine")
    assert out.returncode == 1 and "model.safetensors: contents changed" in out.stdout and "will not load" in out.stdout
    line = one_line_error(workbench("run", "hi", "--model", "mine"), "model.safetensors: contents changed")
    assert "workbench models verify mine" in line  # how to re-check
    flip_last_byte_keeping_size_and_mtime(weights)  # restored, same size and mtime again: verify re-checks, run loads
    assert workbench("models", "verify", "mine").returncode == 0
    assert workbench("run", "hi", "--model", "mine", "--max-tokens", "2", "--no-save").returncode == 0


# ---- declared sizes, names and types -----------------------------------------------------------

def test_a_config_declaring_100000_layers_is_refused_before_building(tiny_model, tmp_path):
    folder = tmp_path / "deep"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 100000}))
    one_line_error(workbench("run", "hi", "--model", str(folder), timeout=120),
                   str(folder / "config.json"), "num_hidden_layers is 100000")


def test_a_gguf_whose_block_count_disagrees_with_its_tensors_is_refused(tmp_path, workbench_home):
    from workbench.models.gguf_import import import_gguf

    assert import_gguf(tiny_gguf(tmp_path / "fine.gguf"), log=lambda s: None).is_dir()  # consistent: imports
    shutil.rmtree(workbench_home / "models")
    path = tiny_gguf(tmp_path / "huge.gguf", block_count=10 ** 6)
    one_line_error(workbench("import", str(path)), str(path), "block_count' is 1000000", "1 blocks")
    assert not (workbench_home / "models").exists() or not any((workbench_home / "models").iterdir())
    one_line_error(workbench("import", str(tiny_gguf(tmp_path / "wide.gguf", embedding_length=4096))),
                   "embedding_length' is 4096", "rows of 8")


def test_an_empty_gguf_is_one_line(tmp_path):
    (tmp_path / "empty.gguf").write_bytes(b"")
    one_line_error(workbench("import", str(tmp_path / "empty.gguf")), str(tmp_path / "empty.gguf"), "not a GGUF file")


def test_import_name_is_a_plain_name_never_a_path(tmp_path, workbench_home, capsys):
    from workbench.cli import main

    victim = tmp_path / "victim"  # what models/../../victim points at
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    path = tiny_gguf(tmp_path / "good.gguf")
    one_line_error(workbench("import", str(path), "--name", "../../victim", "--force"), "--name", "plain name")
    for name in ("/tmp/x", "..", ".hidden", "a/b", ""):
        assert main(["import", str(path), "--name", name, "--force"]) == 2
        assert "plain name" in capsys.readouterr().err
    assert (victim / "precious.txt").read_text() == "keep me"


def test_pull_name_is_a_plain_name_before_the_hub_is_asked(monkeypatch):
    from workbench.errors import UserError
    from workbench.models.pull import pull

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: the name must fail first
    with pytest.raises(UserError, match="plain name"):
        pull("acme/tiny", name="../../victim")


def test_a_model_type_that_is_a_path_names_the_file_and_field(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "../../../tmp/evil"}))
    one_line_error(workbench("run", "hi", "--model", str(folder)), str(folder / "config.json"), "model_type",
                   "../../../tmp/evil")

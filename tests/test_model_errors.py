"""Corrupt model folders give one-line errors that name the file at fault."""

import json
import shutil
import subprocess
import sys

import pytest

from workbench.engine.loader import check_model_folder, load_model
from workbench.errors import ModelLoadError


@pytest.fixture
def model(tiny_model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(tiny_model, folder)
    return folder


def _set_json(path, **changes):
    data = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path.write_text(json.dumps(data))


BREAKAGES = {
    "missing config": (lambda m: (m / "config.json").unlink(), "config.json: missing"),
    "config not json": (lambda m: (m / "config.json").write_text("{oops"), "config.json: not valid JSON"),
    "config without model_type": (lambda m: _set_json(m / "config.json", model_type=None), 'config.json: no "model_type"'),
    "unsupported model_type": (lambda m: _set_json(m / "config.json", model_type="nonsense9"),
                               "model_type 'nonsense9' is not supported"),
    "no weights": (lambda m: (m / "model.safetensors").unlink(), "no *.safetensors weight files"),
    "truncated weights": (lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:300]),
                          "model.safetensors: cannot read weights"),
    "weights of another shape": (lambda m: _set_json(m / "config.json", hidden_size=32), "weights do not match config.json"),
    "no tokenizer": (lambda m: (m / "tokenizer.json").unlink(), "tokenizer.json: missing"),
    "tokenizer not json": (lambda m: (m / "tokenizer.json").write_text("]["), "tokenizer.json: not valid JSON"),
    "no chat template": (lambda m: _set_json(m / "tokenizer_config.json", chat_template=None),
                         "tokenizer_config.json: the tokenizer has no chat template"),
}


@pytest.mark.parametrize("name", BREAKAGES)
def test_one_line_error_naming_the_file(model, name):
    breakage, message = BREAKAGES[name]
    breakage(model)
    with pytest.raises(ModelLoadError) as e:
        load_model(model)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_not_a_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model folder"):
        check_model_folder(tmp_path / "nope")


def test_bad_adapter_folder(model, tmp_path):
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ModelLoadError, match="adapter_config.json: missing"):
        load_model(model, adapter=tmp_path / "adapter")


def test_cli_prints_one_line_and_fails(model):
    (model / "config.json").write_text("{oops")
    out = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--model", str(model)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench: error: ") and "config.json" in lines[0]
    assert out.stdout == ""


def test_cli_unknown_model_name():
    out = subprocess.run([sys.executable, "-m", "workbench", "run", "hi", "--model", "no-such-model"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no model named 'no-such-model'" in out.stderr

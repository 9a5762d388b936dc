"""The wheel carries the catalog and the embedded model, so a pip-installed workbench works like a checkout."""

import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_wheel_ships_models(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT / "models").as_posix() for p in (ROOT / "models").rglob("*") if p.is_file()}
    assert shipped and {f"workbench/shipped_models/{p}" for p in shipped} <= names
    assert "workbench/shipped_models/catalog.toml" in names
    assert any(n.startswith("workbench/eval/suites/") for n in names)

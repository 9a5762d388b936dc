"""The OpenBLAS re-exec decision (the exec itself is exercised by every CLI subprocess test)."""

import subprocess
import sys

import pytest

from workbench.blas import DISABLE_ENV, loaded_blas, preload_env

LIB = "/usr/lib/x86_64-linux-gnu/libopenblas.so.0"


def test_preloads_on_linux_when_missing():
    env = preload_env({"PATH": "/bin"}, "linux", LIB)
    assert env["LD_PRELOAD"] == LIB and env["PATH"] == "/bin"


def test_keeps_an_existing_preload():
    assert preload_env({"LD_PRELOAD": "/x.so"}, "linux", LIB)["LD_PRELOAD"] == f"{LIB} /x.so"


@pytest.mark.parametrize("environ,platform", [
    ({}, "darwin"),
    ({DISABLE_ENV: "1"}, "linux"),
    ({"LD_PRELOAD": LIB}, "linux"),
    ({"WORKBENCH_BLAS_REEXEC": "1"}, "linux"),  # never loop
])
def test_no_reexec(environ, platform):
    assert preload_env(environ, platform, LIB) is None


def test_no_reexec_without_the_library(monkeypatch):
    monkeypatch.setattr("workbench.blas.CANDIDATES", ("/nonexistent/libopenblas.so.0",))
    assert preload_env({}, "linux") is None


def test_loaded_blas_reads_maps(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text("7f00 r-xp 00000000 08:01 1 /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so\n")
    assert loaded_blas(str(maps)).endswith("libopenblasp-r0.3.21.so")
    maps.write_text("7f00 r-xp 00000000 08:01 1 /usr/lib/libc.so.6\n")
    assert loaded_blas(str(maps)) is None


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_workbench_doctor_reports_openblas_when_installed():
    from workbench.blas import find_openblas

    if not find_openblas():
        pytest.skip("OpenBLAS is not installed on this machine")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("LD_PRELOAD", DISABLE_ENV)}
    out = subprocess.run([sys.executable, "-m", "workbench", "doctor", "--json"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "openblas" in __import__("json").loads(out.stdout)["blas"]

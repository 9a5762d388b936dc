"""Import rules from docs/architecture.md: who may import textual, mlx and the TUI.

Static checks read every module's imports with `ast` (imports inside functions count too: the rule
is about which package depends on which). Dynamic checks run `workbench --help` and import
workbench.verify in a fresh interpreter and look at `sys.modules`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def modules_importing(prefix: str) -> dict[str, set[str]]:
    """Source file (relative) -> the imports of `prefix` (or its submodules) it makes."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        hits = {n for n in imported_modules(path) if n == prefix or n.startswith(prefix + ".")}
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


def test_the_import_scanner_sees_imports(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("import textual.app\nfrom textual import work\ndef f():\n    import mlx.core as mx\n")
    assert {"textual.app", "textual", "mlx.core"} <= imported_modules(sample)


def test_only_the_tui_package_imports_textual():
    outside = {f for f in modules_importing("textual") if not f.startswith("workbench/tui/")}
    assert outside == set()
    assert "workbench/tui/app.py" in modules_importing("textual")


def test_only_the_app_command_imports_the_tui():
    outside = {f for f in modules_importing("workbench.tui") if not f.startswith("workbench/tui/")}
    assert outside == {"workbench/commands/app.py"}


def test_the_tui_never_imports_mlx():
    assert {f: n for f, n in modules_importing("mlx").items() if f.startswith("workbench/tui/")} == {}
    assert {f: n for f, n in modules_importing("mlx_lm").items() if f.startswith("workbench/tui/")} == {}


def test_verify_never_imports_mlx_or_textual():
    for banned in ("mlx", "mlx_lm", "textual"):
        hits = {f for f in modules_importing(banned) if f.startswith("workbench/verify/")}
        assert hits == set(), f"workbench/verify imports {banned}: {hits}"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "WORKBENCH_NO_OPENBLAS": "1"}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_importing_verify_loads_neither_mlx_nor_textual():
    if not (PACKAGE / "verify").is_dir():
        pytest.skip("workbench/verify does not exist yet")
    modules = _modules_after(
        "import json, pkgutil, importlib, sys, workbench.verify as v\n"
        "for m in pkgutil.walk_packages(v.__path__, 'workbench.verify.'): importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(sys.modules)))")
    assert not {m for m in modules if m.split(".")[0] in ("mlx", "mlx_lm", "textual")}


def test_workbench_help_imports_neither_mlx_nor_textual():
    modules = _modules_after(
        "import json, sys, contextlib, io\n"
        "from workbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "print(json.dumps(sorted(sys.modules)))")
    assert "workbench.cli" in modules and "workbench.commands.app" in modules
    assert not {m for m in modules if m.split(".")[0] in ("mlx", "mlx_lm", "textual", "sympy")}
    assert "workbench.tui" not in modules

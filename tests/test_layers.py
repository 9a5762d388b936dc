"""The layer order of docs/architecture.md, enforced: every `workbench` import, at module level or
inside a function, goes to the same layer or a lower one, and no two modules import each other
(directly or round a longer circle).

Layers, lowest first. A module belongs to the first layer whose pattern matches its dotted name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("workbench", "workbench.errors", "workbench.paths", "workbench.blas", "workbench.terminal",
              "workbench.jsonl", "workbench.machine")),
    ("vocabulary", ("workbench.engine", "workbench.engine.events", "workbench.engine.splitter",
                    "workbench.engine.prompt", "workbench.engine.profiles", "workbench.engine.protocol")),
    ("verify", ("workbench.verify*",)),
    ("inspect", ("workbench.inspect*",)),
    ("models", ("workbench.models*", "workbench.shipped_models*")),
    ("engine runtime", ("workbench.engine.*",)),
    ("sessions / eval / train / distributed", ("workbench.sessions*", "workbench.eval*", "workbench.train*",
                                               "workbench.distributed*")),
    ("tui", ("workbench.tui*",)),
    ("commands", ("workbench.commands*",)),
    ("cli", ("workbench.cli", "workbench.__main__")),
]


def layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith("*"):
                stem = pattern[:-1].rstrip(".")
                if module == stem or module.startswith(stem + "."):
                    return index
            elif module == pattern:
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package: Path) -> list[tuple[str, int]]:
    """(imported workbench module, line) for every import in the file, relative ones resolved.
    `from a.b import c` counts as importing a.b.c when that is a module, else a.b."""
    name = module_name(path, package)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                is_module = any((package.parent / Path(*child.split("."))).with_suffix(s).exists() if s else
                                (package.parent / Path(*child.split("."))).is_dir() for s in (".py", ""))
                found.append((child if is_module else source, node.lineno))
    top = package.name
    return [(m, line) for m, line in found if m == top or m.startswith(top + ".")]


def import_graph(package: Path = PACKAGE) -> dict[str, list[tuple[str, int, str]]]:
    """module -> [(imported module, line, file)]."""
    graph = {}
    for path in sorted(package.rglob("*.py")):
        rel = str(path.relative_to(package.parent))
        graph[module_name(path, package)] = [(m, line, rel) for m, line in imports_of(path, package)]
    return graph


def upward_imports(graph) -> list[str]:
    bad = []
    for module, edges in graph.items():
        for target, line, rel in edges:
            if layer_of(target) > layer_of(module):
                bad.append(f"{rel}:{line}: {module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                           f"({LAYERS[layer_of(target)][0]})")
    return bad


def circles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    edges = {m: sorted({t for t, _, _ in e if t in graph and t != m}) for m, e in graph.items()}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_import_goes_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_no_two_modules_import_each_other():
    assert circles(import_graph()) == []


def test_only_the_cli_imports_commands():
    graph = import_graph()
    outside = [f"{rel}:{line}" for module, edges in graph.items() for target, line, rel in edges
               if target.startswith("workbench.commands") and layer_of(module) < layer_of("workbench.commands")]
    assert outside == []


# ---- the test of the test: a package with an upward import and a circle is caught ------------------

def fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "workbench"
    for name, text in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_an_upward_import_inside_a_function_is_reported_with_file_and_line(tmp_path):
    package = fake_package(tmp_path, {
        "verify/__init__.py": "",
        "verify/math.py": "def f():\n    from workbench.commands.run import main\n",
        "commands/__init__.py": "",
        "commands/run.py": "def main(): pass\n",
    })
    assert upward_imports(import_graph(package)) == [
        "workbench/verify/math.py:2: workbench.verify.math (verify) imports workbench.commands.run (commands)"]


def test_a_relative_upward_import_is_reported(tmp_path):
    package = fake_package(tmp_path, {
        "engine/__init__.py": "",
        "engine/events.py": "from . import thread\n",
        "engine/thread.py": "",
    })
    assert upward_imports(import_graph(package)) == [
        "workbench/engine/events.py:1: workbench.engine.events (vocabulary) imports workbench.engine.thread "
        "(engine runtime)"]


def test_a_circle_is_reported(tmp_path):
    package = fake_package(tmp_path, {
        "commands/__init__.py": "",
        "commands/run.py": "from workbench.commands import sessions\n",
        "commands/sessions.py": "def f():\n    from workbench.commands.run import main\n",
    })
    assert circles(import_graph(package)) == [["workbench.commands.run", "workbench.commands.sessions"]]
    assert upward_imports(import_graph(package)) == []


def test_an_unknown_module_has_no_layer():
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("elsewhere.module")

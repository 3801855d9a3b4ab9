"""The shape of the package: no import cycles, small modules, no reaching into other modules' privates.

Read from the source with ``ast`` (nothing is imported), so a violation names the file and line.
"""

from __future__ import annotations

import ast
import glob
import os
import pathlib
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAB = ROOT / "lab"
MAX_LINES = 400


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(LAB.rglob("*.py"))}


def _imports(name: str, path: pathlib.Path) -> list[tuple[str, int, list[str]]]:
    """(imported lab module, line, names imported from it) for every import anywhere in the file,
    lazy (inside functions) ones included. ``from lab.x import y`` is an import of ``lab.x.y`` when
    that is a module."""
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == "lab"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            if base.split(".")[0] != "lab":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    out.append((sub, node.lineno, []))
                else:
                    out.append((base, node.lineno, [alias.name]))
    return out


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        edges = set()
        for target, _, _ in _imports(name, path):
            # Importing one's own package (an ancestor's __init__) is how Python runs a submodule;
            # it is not a dependency between modules.
            if target in MODULES and not name.startswith(target + ".") and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_among_lab_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"lab.a": {"lab.b"}, "lab.b": {"lab.c"}, "lab.c": {"lab.a"}, "lab.d": set()}
    assert _cycle(graph) == ["lab.a", "lab.b", "lab.c", "lab.a"]
    assert _cycle({"lab.a": {"lab.b"}, "lab.b": set()}) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def _private_uses(name: str, path: pathlib.Path) -> list[str]:
    """Uses of another lab module's private names: ``from lab.x import _y`` and ``x._y`` where ``x``
    is bound to a lab module by an import."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("lab.") and a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lab"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in MODULES:
                    aliases[a.asname or a.name] = full
                elif a.name.startswith("_") and not a.name.startswith("__") and node.module != name:
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")
                and aliases[node.value.id] != name):
            found.append(f"{path.name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [use for name, path in MODULES.items() for use in _private_uses(name, path)]
    assert not found, "; ".join(found)


def test_private_use_finder_finds_planted_uses(tmp_path):
    path = tmp_path / "planted.py"
    path.write_text("from lab.sweep import store\nfrom lab.optim.base import _hidden\n"
                    "store._read_sidecar('x')\n")
    found = _private_uses("lab.planted", path)
    assert any("lab.optim.base._hidden" in f for f in found)
    assert any("lab.sweep.store._read_sidecar" in f for f in found)


def test_every_data_file_in_the_package_is_installed():
    """A non-Python file under lab/ (the bench's targets and baselines) must match the package-data
    globs, or a non-editable install (pip install .) leaves it out and `lab bench` cannot find it."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    patterns = [os.path.join(*package.split("."), glob)
                for package, globs in package_data.items() for glob in globs]
    data = []
    for d, dirs, names in os.walk(os.path.join(ROOT, "lab")):
        dirs[:] = [x for x in dirs if not x.startswith(".") and x != "__pycache__"]  # caches
        data += [os.path.relpath(os.path.join(d, n), ROOT) for n in names if not n.endswith((".py", ".tmp"))]
    assert data, "expected the bench's committed data files under lab/"
    # glob as setuptools does: '*' does not cross '/' (fnmatch's would)
    installed = {os.path.relpath(f, ROOT) for pattern in patterns
                 for f in glob.glob(os.path.join(ROOT, pattern))}
    missed = [p for p in data if p not in installed]
    assert not missed, f"not in [tool.setuptools.package-data]: {missed}"

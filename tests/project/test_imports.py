"""The app's layers, read from the source with `ast`: common is imported by
frontend and backend and imports neither, the two tiers never import each
other, and no two modules import each other, however indirectly: not even
through an import hidden inside a function, which `ast.walk` sees as well."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("common", "backend", "frontend")
# What each package may import of the app; lab, bench and tests are outside it.
ALLOWED = {
    "common": {"common"},
    "backend": {"common", "backend"},
    "frontend": {"common", "frontend"},
}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_modules(root: Path = ROOT) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in APP_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # alembic's scripts, loaded by file path
            modules[_module_name(path, root)] = path
    return modules


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    # A package's relative import starts from the package itself.
    keep = len(base) - node.level + (1 if is_package else 0)
    prefix = ".".join(base[:keep])
    return f"{prefix}.{node.module}" if node.module else prefix


def imports_of(module: str, source: str, known: Iterable[str], is_package: bool) -> set[str]:
    """The app modules `module` imports, wherever in the file the import is."""
    known = set(known)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, node, is_package)
            names = [
                f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in APP_PACKAGES)
    found.discard(module)
    return found


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    return {
        name: imports_of(name, path.read_text(), modules, path.name == "__init__.py")
        for name, path in modules.items()
    }


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as a path `a -> b -> ... -> a`, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def upward_imports(graph: Mapping[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if target.split(".")[0] not in ALLOWED[module.split(".")[0]]
    )


def test_no_import_cycle_between_app_modules() -> None:
    assert find_cycle(import_graph(app_modules())) is None


def test_no_upward_or_sideways_import() -> None:
    assert upward_imports(import_graph(app_modules())) == []


def test_the_graph_is_read_at_all() -> None:
    graph = import_graph(app_modules())
    assert "common.uvicorn_runner" in graph["backend.main"]  # imported inside run()
    assert "common.access_log" in graph["common.middleware.access_logging"]


def _write(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in APP_PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return app_modules(root)


@pytest.mark.parametrize(
    "files",
    [
        # The cycle issue 27 found: hidden in a function body.
        {
            "common/__init__.py": "",
            "common/a.py": "def f():\n    from common.b import g\n",
            "common/b.py": "from common.a import f\n",
        },
        # Through a relative import and a third module.
        {
            "common/__init__.py": "",
            "common/a.py": "from . import b\n",
            "common/b.py": "from .c import x\n",
            "common/c.py": "import common.a\n",
        },
    ],
)
def test_a_cycle_is_found(tmp_path: Path, files: dict[str, str]) -> None:
    modules = _write(tmp_path, files)
    cycle = find_cycle(import_graph(modules))
    assert cycle is not None and cycle[0] == cycle[-1]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"common/x.py": "from backend.y import z\n"}, "common.x imports backend.y"),
        ({"backend/x.py": "import frontend.y\n"}, "backend.x imports frontend.y"),
        ({"frontend/x.py": "from backend import y\n"}, "frontend.x imports backend"),
    ],
)
def test_an_upward_import_is_found(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    modules = _write(tmp_path, files)
    assert upward_imports(import_graph(modules)) == [expected]

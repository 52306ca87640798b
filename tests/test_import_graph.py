"""The import graph of the cnnjax package: no cycles (not even through imports inside
functions) and nothing outside `cnnjax/cli/` imports the command line.

The graph is read from the source with `ast`, so it sees the lazy imports that a run would only
meet on some paths: every `import` / `from ... import` of a cnnjax module anywhere in a file,
except inside `if TYPE_CHECKING:` (never executed). Importing `a.b.c` depends on `a.b.c` and on
the packages `a.b` and `a` whose `__init__` runs first, unless the importer is itself inside
that package (then its `__init__` has already run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "cnnjax"
CLI = "cnnjax.cli"
OLD_CLI = ("cnnjax.train_cli", "cnnjax.inspect_cli", "cnnjax.experiments_cli", "cnnjax.data.cli")

Graph = dict[str, set[str]]


def _modules(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package below `src`."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every import statement (and `importlib.import_module("literal")` call) below `node`,
    at any depth, skipping the bodies of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)) or (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Attribute)
            and child.func.attr == "import_module"
            and child.args
            and isinstance(child.args[0], ast.Constant)
            and isinstance(child.args[0].value, str)
        ):
            yield child
        yield from _import_nodes(child)


def _imports(module: str, is_package: bool, tree: ast.AST) -> Iterator[tuple[str, list[str]]]:
    """(`a.b`, []) for `import a.b`, (`a`, [`b`, `c`]) for `from a import b, c` (relative
    imports resolved against this module's package)."""
    here = module if is_package else module.rpartition(".")[0]
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, [alias.name for alias in node.names]
        else:  # importlib.import_module("...")
            yield node.args[0].value, []  # type: ignore[attr-defined]


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _targets(base: str, names: list[str], modules: dict[str, Path]) -> set[str]:
    """The modules an import needs: `a.b` for `from a import b` when `a.b` is a module, and `a`
    itself for `import a` or a name defined in `a` (the nearest module when `a` is not one)."""
    found = {f"{base}.{n}" for n in names if f"{base}.{n}" in modules}
    if len(found) < len(names) or not names:
        while base not in modules and "." in base:
            base = base.rpartition(".")[0]
        found.add(base)
    return found & set(modules)


def import_graph(src: Path, package: str = PACKAGE) -> tuple[Graph, dict[str, set[str]]]:
    """(module -> the package modules it depends on, module -> every dotted name it imports)."""
    modules = _modules(src, package)
    graph: Graph = {}
    raw: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        imports = [
            (base, names)
            for base, names in _imports(module, path.name == "__init__.py", tree)
            if _inside(base, package)
        ]
        raw[module] = {base for base, _ in imports} | {
            f"{base}.{n}" for base, names in imports for n in names
        }
        deps = set()
        for base, names in imports:
            for target in _targets(base, names, modules):
                deps.add(target)
                parts = target.split(".")
                for i in range(1, len(parts)):  # the packages whose __init__ runs first
                    parent = ".".join(parts[:i])
                    if parent in modules and not _inside(module, parent):
                        deps.add(parent)
        deps.discard(module)
        graph[module] = deps
    return graph, raw


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle path [a, b, ..., a] per strongly connected component with a cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_shortest_cycle(graph, c) for c in sorted(components)]


def _shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module, staying inside the component."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def _format(cycle: list[str]) -> str:
    return " -> ".join(cycle)


# --------------------------------------------------------------------------- the package


@pytest.fixture(scope="module")
def graph() -> tuple[Graph, dict[str, set[str]]]:
    return import_graph(ROOT)


def test_the_graph_sees_lazy_imports(graph):
    """Not vacuous: the walker finds the package, top-level and function-level imports."""
    deps, _ = graph
    assert len(deps) > 30 and sum(map(len, deps.values())) > 60
    assert "cnnjax.analysis" in deps["cnnjax.plots.receptive"]  # a top-level import
    lazy = [m for m in deps if m.startswith(CLI) and "cnnjax.inspect" in deps[m]]
    assert lazy, "the CLI imports cnnjax.inspect inside functions; the walker should see it"


def test_no_import_cycles(graph):
    deps, _ = graph
    found = cycles(deps)
    assert not found, "import cycles:\n" + "\n".join(_format(c) for c in found)


def test_nothing_outside_the_cli_imports_it(graph):
    _, raw = graph
    bad = {
        module: sorted(n for n in names if _inside(n, CLI) or any(_inside(n, o) for o in OLD_CLI))
        for module, names in raw.items()
        if not _inside(module, CLI)
    }
    bad = {m: names for m, names in bad.items() if names}
    assert not bad, f"modules outside cnnjax/cli/ that import the command line: {bad}"


# --------------------------------------------------------------------------- the walker


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_walker_finds_a_cycle_hidden_in_a_function_and_skips_type_checking(tmp_path):
    src = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    from pkg.c import g\n",
            "pkg/c.py": "import pkg.a\ng = 1\n",
            "pkg/d.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\n"
                "else:\n    import pkg.sub.x\n"
            ),
            "pkg/e.py": "import importlib\nimportlib.import_module('pkg.d')\n",
            "pkg/sub/__init__.py": "from .x import y\n",
            "pkg/sub/x.py": "from . import z\ny = 1\n",
            "pkg/sub/z.py": "",
            "pkg/other/__init__.py": "from .w import v\nname = 1\n",
            "pkg/other/w.py": "def f():\n    from pkg.other import name\nv = 1\n",
            "pkg/other/q.py": "from pkg.other import w\n",
        },
    )
    deps, raw = import_graph(src, "pkg")
    assert deps["pkg.a"] == {"pkg.b"} and deps["pkg.b"] == {"pkg.c"}  # function-level import
    assert deps["pkg.d"] == {"pkg.sub", "pkg.sub.x"}  # not pkg.e (TYPE_CHECKING); sub's init
    assert deps["pkg.e"] == {"pkg.d"}  # importlib.import_module with a literal
    assert deps["pkg.sub"] == {"pkg.sub.x"}  # a package importing its own module
    assert deps["pkg.sub.x"] == {"pkg.sub.z"}  # inside pkg.sub: its __init__ has already run
    assert deps["pkg.other.q"] == {"pkg.other.w"}  # a sibling module, not the package's names
    assert deps["pkg.other.w"] == {"pkg.other"}  # a name defined in the package's __init__
    assert cycles(deps) == [
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ["pkg.other", "pkg.other.w", "pkg.other"],
    ]
    assert "pkg.e" not in raw["pkg.d"] and "pkg.sub.x.y" in raw["pkg.sub"]
    deps["pkg.sub.z"] = {"pkg.d"}
    assert ["pkg.d", "pkg.sub.x", "pkg.sub.z", "pkg.d"] in cycles(deps)  # the shortest path

"""The package's stages import one way only: a module may import from its own stage or a lower one.

errors, precisions, naming, version  <  machine  <  backends  <  measure  <  document  <  model  <  registry
    <  interop  <  report  <  plugin  <  site  <  cli

The check walks every module's AST (imports inside functions and under TYPE_CHECKING included, so a
cycle cannot hide behind either) and fails on an import that climbs a layer, and on any import cycle
between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hwcal

PACKAGE = Path(hwcal.__file__).resolve().parent
LAYERS = ("base", "machine", "backends", "measure", "document", "model", "registry", "interop", "report", "plugin",
          "site", "cli")
BASE_MODULES = {"errors", "precisions", "naming", "version"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "hwcal" or len(parts) == 1:
        return None  # the package root re-exports lazily; it is nobody's dependency
    head = parts[1]
    if head in BASE_MODULES:
        return 0
    if head in LAYERS:
        return LAYERS.index(head)
    raise AssertionError(f"{module}: not in any stage; add its folder to LAYERS or BASE_MODULES")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hwcal")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hwcal") and node.level == 0:
            found.add(node.module)
            # `from hwcal.x import y` may import the submodule hwcal.x.y
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_belongs_to_a_stage() -> None:
    for name in _modules():
        _layer(name)


def test_imports_never_climb_a_stage() -> None:
    climbs = []
    for name, path in _modules().items():
        mine = _layer(name)
        if mine is None:
            continue
        for target in _imports(path):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                climbs.append(f"{name} ({LAYERS[mine]}) imports {target} ({LAYERS[theirs]})")
    assert climbs == []


def test_no_import_cycles() -> None:
    # The package root only re-exports (lazily): importing hwcal.__version__ from it is no cycle.
    modules = {name: path for name, path in _modules().items() if name != "hwcal"}
    graph = {name: {t for t in _imports(path) if t in modules and t != name} for name, path in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_over_400_lines() -> None:
    long = {name: n for name, path in _modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}

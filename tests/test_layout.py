"""The package's folders follow the flow, and its imports only look upstream.

probe sets -> models -> engine -> statistics -> claims -> report, with ``core`` below everything and the runners
(``run``) and the command line (``cli``) on top. A module may import its own stage or an earlier one; an import
of a later stage (against the flow) or an import cycle fails here, naming the modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"
#: Stages in flow order; a module of stage i may import stages 0..i.
STAGES = ("core", "probes", "models", "engine", "stats", "claims", "report", "run", "cli")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``benchmark.*`` module a file imports (at any depth of the file: lazy imports count too)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("benchmark"):
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("benchmark"))
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {t for t in _imports(path) if t in files and t != name}
    return graph


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None


def test_every_module_lives_in_a_stage() -> None:
    loose = sorted(m for m in _graph() if m != "benchmark" and _stage(m) is None)
    assert not loose, f"modules outside the stage folders {STAGES}: {loose}"


def test_no_import_against_the_flow() -> None:
    against = []
    for module, targets in _graph().items():
        here = _stage(module)
        for target in targets:
            there = _stage(target)
            if here and there and STAGES.index(there) > STAGES.index(here):
                against.append(f"{module} ({here}) imports {target} ({there})")
    assert not against, "imports against the flow:\n" + "\n".join(sorted(against))


def test_no_import_cycle() -> None:
    graph = _graph()
    # A package's __init__ that re-exports its own modules is not a cycle of theirs.
    edges = {
        m: {t for t in ts if not (m.startswith(t + ".") and graph.get(t) is not None)}
        for m, ts in graph.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_package(stage: str) -> None:
    assert (PACKAGE / stage / "__init__.py").is_file()

"""The package's imports form no cycle, and the core keeps its one-way chain."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rlmagent"
CHAIN = ("agent", "run", "host", "tree")
"""The core's one-way chain: each may import those after it, never those before."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def graph() -> dict[str, set[str]]:
    """Every module's imports of rlmagent modules: top level, lazy and TYPE_CHECKING."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module not in modules:
                    continue
                for alias in node.names:  # `from rlmagent import parsing` names a module
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
        edges[name] = found - {name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_core_imports() -> None:
    edges = graph()
    assert "rlmagent.run" in edges["rlmagent.agent"]
    assert "rlmagent.host" in edges["rlmagent.run"]
    assert "rlmagent.tree" in edges["rlmagent.host"]


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere_in_the_package() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("index", range(1, len(CHAIN)))
def test_the_core_chain_only_points_down(index: int) -> None:
    edges = graph()
    module = f"rlmagent.{CHAIN[index]}"
    above = {f"rlmagent.{name}" for name in CHAIN[:index]}
    assert not edges[module] & above, f"{module} imports {sorted(edges[module] & above)}"

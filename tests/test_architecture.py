"""The package's layering, read from the source with ``ast``: every ``import`` / ``from ... import`` node counts,
including those inside functions (a function-level import hides a cycle from Python, not from this test).

- no import cycle among the modules of ``rewardlab.models`` (``models/formats/`` included);
- ``rewardlab.train`` never imports ``rewardlab.rewards`` (Train is an earlier stage than Rewards).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "rewardlab"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module an ImportFrom reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """``{module: {rewardlab modules it imports}}`` over every .py file of the package. ``from P import name``
    counts as an import of ``P.name`` when that is a module, else of ``P``."""
    files = {module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(node, module, path.name == "__init__.py")
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in files else source for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a name inside a module: that module
                    target = target.rpartition(".")[0]
                if target.startswith(PACKAGE) and target != module:
                    edges.add(target)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]], within: str) -> list[list[str]]:
    """Strongly connected components of more than one module (or a self-loop) among modules under ``within``."""
    nodes = [m for m in graph if m == within or m.startswith(within + ".")]
    sub = {m: {t for t in graph[m] if t in nodes} for m in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sub[v]:
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
                found.append(sorted(component))

    for v in sorted(sub):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # rewards.registry imports its reward families inside load_reward only
    assert "rewardlab.rewards.prm" in graph["rewardlab.rewards.registry"]
    assert "rewardlab.models.formats" in graph["rewardlab.rewards.registry"]


def test_no_import_cycle_among_models_modules():
    assert cycles(import_graph(), "rewardlab.models") == []


def test_cycle_finder_finds_a_cycle():
    graph = {"rewardlab.models.a": {"rewardlab.models.b"}, "rewardlab.models.b": {"rewardlab.models.a"},
             "rewardlab.models.c": {"rewardlab.models.a"}}
    assert cycles(graph, "rewardlab.models") == [["rewardlab.models.a", "rewardlab.models.b"]]


def test_train_never_imports_rewards():
    graph = import_graph()
    bad = {m: sorted(t for t in targets if t == "rewardlab.rewards" or t.startswith("rewardlab.rewards."))
           for m, targets in graph.items() if m == "rewardlab.train" or m.startswith("rewardlab.train.")}
    assert {m: t for m, t in bad.items() if t} == {}


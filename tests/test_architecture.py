"""The package's layering, read from the source with ``ast``: every ``import`` / ``from ... import`` node counts,
including those inside functions (a function-level import hides a cycle from Python, not from this test).

- no import cycle among the modules of ``rewardlab.models`` (``models/formats/`` included);
- ``rewardlab.train`` never imports ``rewardlab.rewards`` (Train is an earlier stage than Rewards).
- no library module imports a CLI module (``*.cli``, ``*_cli``), and no import cycle runs through one;
- every ``rewardlab optimize`` command is an explicit function that calls its loop (e.g. ``train_raft``) by name.
"""

from __future__ import annotations

import ast
import functools
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


@functools.cache
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


def test_no_import_cycle_anywhere_in_the_package():
    assert cycles(import_graph(), "rewardlab") == []


def test_stages_are_layers():
    """Collapsed to stages (``rewardlab.<stage>``; top-level modules such as ``io`` are their own), the graph has no
    cycle: a later stage imports earlier ones, never the reverse (docs/architecture.md draws the layers)."""
    stage = {}
    for module in import_graph():
        parts = module.split(".")
        stage[module] = ".".join(parts[:2])
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph().items():  # (cached: read-only here)
        graph.setdefault(stage[module], set()).update(stage[t] for t in targets if stage[t] != stage[module])
    assert cycles(graph, "rewardlab") == []


def test_cycle_finder_finds_a_cycle():
    graph = {"rewardlab.models.a": {"rewardlab.models.b"}, "rewardlab.models.b": {"rewardlab.models.a"},
             "rewardlab.models.c": {"rewardlab.models.a"}}
    assert cycles(graph, "rewardlab.models") == [["rewardlab.models.a", "rewardlab.models.b"]]


def test_train_never_imports_rewards():
    graph = import_graph()
    bad = {m: sorted(t for t in targets if t == "rewardlab.rewards" or t.startswith("rewardlab.rewards."))
           for m, targets in graph.items() if m == "rewardlab.train" or m.startswith("rewardlab.train.")}
    assert {m: t for m, t in bad.items() if t} == {}


# --- the CLI as a face: CLI modules parse, call one library function and print; the library never imports them ---

OPTIMIZE_LOOPS = {"bon": ("best_of_n", "run_best_of_n"), "rloo": ("rloo", "train_rloo"),
                  "grpo": ("rloo", "train_grpo"), "raft": ("raft", "train_raft"),
                  "superhf": ("superhf", "train_superhf"),
                  "dpo": ("dpo", "train_online_dpo")}  # command -> (module of rewardlab.optimize, loop function)


def is_cli(module: str) -> bool:
    """A command-line module: ``rewardlab.cli``, ``<stage>.cli`` or ``<stage>.<name>_cli``."""
    last = module.rpartition(".")[2]
    return last == "cli" or last.endswith("_cli")


def test_cli_modules_are_found():
    names = {m for m in import_graph() if is_cli(m)}
    assert {"rewardlab.cli", "rewardlab.rewards.cli", "rewardlab.optimize.cli", "rewardlab.evaluate.prm_cli"} <= names


def test_no_library_module_imports_a_cli_module():
    """Library code is called by the CLI, never the reverse (an import inside a function counts)."""
    graph = import_graph()
    bad = {m: sorted(t for t in targets if is_cli(t)) for m, targets in graph.items() if not is_cli(m)}
    assert {m: t for m, t in bad.items() if t} == {}


def test_no_import_cycle_through_a_cli_module():
    found = [c for c in cycles(import_graph(), PACKAGE) if any(is_cli(m) for m in c)]
    assert found == []


def _optimize_commands() -> dict[str, ast.FunctionDef]:
    """``{name: function}`` of every ``@optimize_app.command(NAME)`` in optimize/cli.py."""
    tree = ast.parse((SRC / PACKAGE / "optimize" / "cli.py").read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        for d in getattr(node, "decorator_list", []):
            if (isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "command"
                    and isinstance(d.func.value, ast.Name) and d.func.value.id == "optimize_app"):
                out[d.args[0].value] = node
    return out


def test_every_optimize_command_is_a_function_that_calls_its_loop_by_name():
    """``rewardlab optimize X`` is one explicit function that imports its loop (e.g. ``train_raft``) from its module
    and passes it to run_optimization: a grep for the loop finds its command."""
    import importlib

    import typer.main

    from rewardlab.optimize.cli import optimize_app

    commands = _optimize_commands()
    registered = typer.main.get_command(optimize_app).commands
    assert set(commands) == set(registered) == set(OPTIMIZE_LOOPS)
    for name, fn in commands.items():
        module, loop = OPTIMIZE_LOOPS[name]
        imported = {(n.module, a.name) for n in ast.walk(fn) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert (f"rewardlab.optimize.{module}", loop) in imported, name
        calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "run_optimization"]
        assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Name) and calls[0].args[0].id == loop, name
        assert registered[name].callback.__name__ == fn.name, name
        assert callable(getattr(importlib.import_module(f"rewardlab.optimize.{module}"), loop))

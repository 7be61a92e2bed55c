"""The house rules of docs/architecture.md ("Dependency direction"), checked on the source: every import counts,
also one inside a function or under ``TYPE_CHECKING`` (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
COMPOSITION_ROOT = "gateway.runtime"
STATE_ROOT = "gateway.state_runtime"  # the composition root's part without the configuration (the runtime's base)
ENTRY_POINTS = {f"{name}.app" for name in ("metadata", "register", "authorize", "oauth_token", "proxy")}
CLI_ENTRY_POINT = "gateway.admin.command"  # the admin CLI: builds its stores with the composition root's state part
DOMAIN = ("gateway.oauth", "gateway.tokens", "gateway.storage.ports", "gateway.routes", "gateway.config")


def module_name(path: Path) -> str:
    parts = path.relative_to(FUNCTIONS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in FUNCTIONS.rglob("*.py")}


def imports_of(tree: ast.Module, known: set[str]) -> Iterator[tuple[str, str | None]]:
    """(module, imported name or None) for every import in ``tree`` of a module in ``known``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    yield submodule, None
                elif node.module in known:
                    yield node.module, alias.name


def graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    edges: dict[str, set[str]] = {}
    for name, tree in trees.items():
        edges[name] = {target for target, _ in imports_of(tree, known) if target != name}
    return edges


def cycle_through(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_there_is_no_import_circle_in_functions() -> None:
    # Given every module under functions/ and all of its imports (lazy ones included)
    edges = graph()
    assert len(edges) > 50  # the walk found the code

    # Then no chain of imports leads back to where it started
    assert cycle_through(edges) is None, " -> ".join(cycle_through(edges) or [])


def test_only_the_entry_points_use_the_composition_root() -> None:
    users = sorted(name for name, targets in graph().items() if COMPOSITION_ROOT in targets)
    assert set(users) <= ENTRY_POINTS, f"modules reaching into {COMPOSITION_ROOT}: {set(users) - ENTRY_POINTS}"
    assert set(users) == ENTRY_POINTS  # each function builds its runtime
    state_users = {name for name, targets in graph().items() if STATE_ROOT in targets}
    assert state_users == {COMPOSITION_ROOT, CLI_ENTRY_POINT}, f"modules reaching into {STATE_ROOT}: {state_users}"


def test_no_module_imports_a_private_name_of_another() -> None:
    trees = modules()
    known = set(trees)
    found = [
        f"{name} imports {target}.{imported}"
        for name, tree in trees.items()
        for target, imported in imports_of(tree, known)
        if imported is not None and imported.startswith("_") and not imported.startswith("__")
    ]
    assert found == []


def test_domain_modules_import_neither_boto3_nor_a_web_framework() -> None:
    forbidden = ("boto3", "botocore", "starlette", "fastapi", "mangum", "gateway.web", "gateway.aws")
    offenders = []
    for name, tree in modules().items():
        if not name.startswith(DOMAIN):
            continue
        for node in ast.walk(tree):
            targets = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{name}: {target}" for target in targets if target.startswith(forbidden)]
    assert offenders == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    # The check above would pass vacuously if the finder could not see a cycle.
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": set()}) is None

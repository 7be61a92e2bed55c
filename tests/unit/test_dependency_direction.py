"""The house rules of docs/architecture.md ("Dependency direction"), checked on the source of every module under
``functions/``: every import counts, also one inside a function or under ``TYPE_CHECKING`` (a lazy import is still a
dependency), ``from gateway import aws`` names the module ``gateway.aws``, and a dynamic import of a literal name
(``importlib.import_module("gateway.aws")``) is an import too. Relative imports are refused outright: they would
hide a dependency from this check and from a reader.

The layers, top to bottom, are the ones docs/architecture.md draws. A module may import its own layer's modules and
those of the layers below; never one above. Two exceptions, both drawn in the doc: the AWS adapters (``gateway.aws``)
sit beside the stack and implement ports of the layers below (only the composition root plugs them in), and the
composition root may import every layer, since it builds them all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"

# Top to bottom. Each entry is a layer: the module-name prefixes it holds (a prefix names a module and everything in
# it). Keep in step with the picture in docs/architecture.md.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "entry points",
        (
            "metadata",
            "register",
            "authorize",
            "oauth_token",
            "proxy",
            "admin_console",
            "gateway.entry",
            "gateway.lambda_extension",
            "gateway.admin",
        ),
    ),
    ("composition root", ("gateway.runtime", "gateway.state_runtime")),
    ("HTTP layer", ("gateway.web", "gateway.observability")),
    ("operator service", ("gateway.operations",)),
    ("virtual routes", ("gateway.virtual",)),
    ("MCP proxy", ("gateway.proxy",)),
    ("upstream credentials and API keys", ("gateway.upstream", "gateway.api_keys")),
    ("authorization server", ("gateway.oauth",)),
    ("sign-in at identity providers", ("gateway.identity",)),
    ("access tokens", ("gateway.tokens",)),
    ("audit trail, usage rollups and rate limits", ("gateway.audit", "gateway.usage", "gateway.rate_limits")),
    ("MCP wire layer", ("gateway.mcp",)),
    ("routes and outbound HTTP", ("gateway.routes", "gateway.net", "gateway.http_client", "gateway.secrets")),
    ("configuration", ("gateway.config",)),
    (
        "primitives",
        (
            "gateway.settings",
            "gateway.after_answer",
            "gateway.principals",
            "gateway.display_text",
            "gateway.crypto",
            "gateway.safe_json",
        ),
    ),
    ("storage ports and records", ("gateway.storage",)),
    ("package", ("gateway",)),
)
ADAPTERS = "gateway.aws"
COMPOSITION_ROOT = ("gateway.runtime", "gateway.state_runtime")
ENTRY_POINTS = {
    f"{name}.app" for name in ("metadata", "register", "authorize", "oauth_token", "proxy", "admin_console")
}
BUILDS_A_FUNCTION = "gateway.entry"
CLI = "gateway.admin.command"
# What no module below the HTTP layer may import: the AWS SDK and the web frameworks (adapters and the HTTP layer do).
FRAMEWORKS = ("boto3", "botocore", "starlette", "fastapi", "mangum", "uvicorn")
DOMAIN_LAYERS_FROM = "operator service"


def module_name(path: Path) -> str:
    parts = path.relative_to(FUNCTIONS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(encoding="utf-8"))
        for path in FUNCTIONS.rglob("*.py")
        if "deploy_config" not in path.parts
    }


@dataclass(frozen=True)
class Import:
    target: str  # the module imported (the longest known module the statement names)
    name: str | None  # the name taken from it (``from m import name``), if it is not itself a module
    external: str  # the dotted name as written, for third-party checks
    line: int


def _dynamic_target(node: ast.Call) -> str | None:
    """The literal module name of ``importlib.import_module("...")`` or ``__import__("...")``."""
    function = node.func
    named = (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id in ("import_module", "__import__")
    )
    if named and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def _longest_known(dotted: str, known: set[str]) -> str | None:
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def imports_of(tree: ast.Module, known: set[str]) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(_longest_known(alias.name, known) or "", None, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                if submodule in known:
                    yield Import(submodule, None, submodule, node.lineno)
                else:
                    yield Import(_longest_known(module, known) or "", alias.name, module, node.lineno)
        elif isinstance(node, ast.Call):
            target = _dynamic_target(node)
            if target is not None:
                yield Import(_longest_known(target, known) or "", None, target, node.lineno)


def graph(trees: dict[str, ast.Module] | None = None) -> dict[str, set[str]]:
    trees = modules() if trees is None else trees
    known = set(trees)
    return {
        name: {found.target for found in imports_of(tree, known) if found.target and found.target != name}
        for name, tree in trees.items()
    }


def layer_of(module: str) -> int | None:
    """The index of ``module``'s layer (the longest prefix wins), None for the adapters and unknown modules."""
    best: tuple[int, int] | None = None  # (prefix length, layer)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def is_adapter(module: str) -> bool:
    return module == ADAPTERS or module.startswith(ADAPTERS + ".")


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Every import that points up the layers (or into the adapters from anywhere but the composition root)."""
    found = []
    for name, targets in sorted(edges.items()):
        if name.startswith(COMPOSITION_ROOT):
            continue
        for target in sorted(targets):
            if is_adapter(target) and not is_adapter(name):
                found.append(f"{name} imports the adapter {target} (only the composition root plugs adapters in)")
                continue
            source_layer = layer_of(name)
            target_layer = layer_of(target)
            if is_adapter(name) or source_layer is None or target_layer is None:
                continue
            if target_layer < source_layer:
                found.append(
                    f"{name} ({LAYERS[source_layer][0]}) imports {target} ({LAYERS[target_layer][0]}), a layer above"
                )
    return found


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


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = sorted(name for name in modules() if layer_of(name) is None and not is_adapter(name))
    assert unplaced == [], f"place these in a layer (here and in docs/architecture.md): {unplaced}"


def test_no_import_points_up_the_layers() -> None:
    edges = graph()
    assert len(edges) > 100  # the walk found the code
    assert upward_imports(edges) == []


def test_there_is_no_import_circle_in_functions() -> None:
    edges = graph()
    assert cycle_through(edges) is None, " -> ".join(cycle_through(edges) or [])


def test_only_the_entry_points_build_the_runtime() -> None:
    edges = graph()
    users = {name for name, targets in edges.items() if "gateway.runtime" in targets}
    assert users == {BUILDS_A_FUNCTION}, f"modules reaching into gateway.runtime: {users - {BUILDS_A_FUNCTION}}"
    state_users = {name for name, targets in edges.items() if "gateway.state_runtime" in targets}
    assert state_users == {"gateway.runtime", CLI}, f"modules reaching into gateway.state_runtime: {state_users}"
    # each function's entry point builds its container through the one builder
    assert {name for name, targets in edges.items() if BUILDS_A_FUNCTION in targets} == ENTRY_POINTS


def test_no_module_imports_a_private_name_of_another() -> None:
    trees = modules()
    known = set(trees)
    found = [
        f"{name} imports {imported.target}.{imported.name}"
        for name, tree in trees.items()
        for imported in imports_of(tree, known)
        if imported.name is not None and imported.name.startswith("_") and not imported.name.startswith("__")
    ]
    assert found == []


def test_no_module_imports_relatively() -> None:
    found = [
        f"{name}:{node.lineno}"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert found == []


def test_below_the_http_layer_no_module_imports_the_aws_sdk_or_a_web_framework() -> None:
    first_domain_layer = next(index for index, (title, _) in enumerate(LAYERS) if title == DOMAIN_LAYERS_FROM)
    trees = modules()
    known = set(trees)
    offenders = [
        f"{name}:{imported.line} {imported.external}"
        for name, tree in trees.items()
        if not is_adapter(name) and (layer_of(name) or 0) >= first_domain_layer
        for imported in imports_of(tree, known)
        if imported.external.split(".")[0] in FRAMEWORKS
    ]
    assert offenders == []


# --- the checker checks: each rule sees what it must -------------------------------------------------------------


def _edges_of(sources: dict[str, str]) -> dict[str, set[str]]:
    return graph({name: ast.parse(source) for name, source in sources.items()})


@pytest.mark.parametrize(
    "source",
    [
        "from gateway import aws",
        "import gateway.aws.dynamodb_store",
        "from gateway.aws.dynamodb_store import DynamoGrantStore",
        "def later():\n    from gateway.aws import dynamodb_store",
        "import importlib\nimportlib.import_module('gateway.aws.dynamodb_store')",
    ],
)
def test_an_import_of_an_adapter_from_the_domain_is_seen_in_every_form(source: str) -> None:
    edges = _edges_of({"gateway.oauth.clients": source, "gateway.aws": "", "gateway.aws.dynamodb_store": ""})
    assert upward_imports(edges) != []


def test_an_import_up_the_layers_is_seen() -> None:
    edges = _edges_of({"gateway.mcp.codes": "from gateway.proxy import relay", "gateway.proxy.relay": ""})
    assert upward_imports(edges) == [
        "gateway.mcp.codes (MCP wire layer) imports gateway.proxy.relay (MCP proxy), a layer above"
    ]
    assert (
        upward_imports(_edges_of({"gateway.proxy.relay": "from gateway.mcp import codes", "gateway.mcp.codes": ""}))
        == []
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycle_through({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_through({"a": {"b"}, "b": set()}) is None

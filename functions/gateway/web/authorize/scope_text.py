"""What a scope lets an application do, in the words the consent page and My connections show a user."""

from __future__ import annotations

from collections.abc import Iterable

SCOPE_DESCRIPTIONS = {
    "mcp": "Use this MCP server on your behalf: list and call its tools, read its resources and prompts.",
    "offline_access": "Stay connected while you are away (the application may refresh its access).",
}


def describe_scopes(names: Iterable[str]) -> list[dict[str, str]]:
    """``[{"name": ..., "description": ...}]`` for each scope, in order."""
    return [
        {"name": name, "description": SCOPE_DESCRIPTIONS.get(name, f"Permission {name!r} on this server.")}
        for name in names
    ]

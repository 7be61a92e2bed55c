"""MCP 2026-07-28 §Server "Caching": the ``ttlMs`` and ``cacheScope`` a cacheable result carries.

``cacheScope: "public"`` lets any client or intermediary serve the result across authorization contexts;
``"private"`` only within the same one. A route whose lists depend on the caller (each user's own upstream account,
an access policy; :attr:`gateway.routes.Route.lists_depend_on_caller`) must never let a list be shared, whatever the
upstream said: its list results are made private on the way to the client.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.mcp.jsonrpc import Message

LIST_METHODS = frozenset({"tools/list", "prompts/list", "resources/list", "resources/templates/list"})
PRIVATE = "private"


def made_private(messages: Iterable[Message]) -> tuple[tuple[Message, ...], bool]:
    """``messages`` with every result's ``cacheScope`` made private, and whether any had to change."""
    changed = False
    out: list[Message] = []
    for message in messages:
        result = message.get("result")
        if isinstance(result, dict) and "cacheScope" in result and result["cacheScope"] != PRIVATE:
            message = {**message, "result": {**result, "cacheScope": PRIVATE}}
            changed = True
        out.append(message)
    return tuple(out), changed

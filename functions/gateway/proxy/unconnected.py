"""What a route says itself when the user has not connected an upstream account (yet), so the user sees it.

Clients treat a failed ``initialize`` (or ``server/discover``) as a dead server and many never show why, and a list
that silently lacks an upstream's tools looks like a broken one. So, while the user's account for an upstream is not
connected:

- the route introduces itself anyway (the session era's ``initialize``, 2026-07-28's ``server/discover``), with
  ``instructions`` that name the account to connect and its link;
- its tool list holds one tool per such upstream, ``connect_<name>``, described as what it is; calling it asks for
  the account in the era's form (:mod:`gateway.proxy.reconnect`), and once the account is connected it says so (and,
  in the session era, tells the client that the tool list changed, so the upstream's own tools appear);
- results that depend on the caller carry ``cacheScope: "private"`` and, while an account is missing, ``ttlMs: 0``
  (MCP 2026-07-28 §Server "Caching"), so a client lists again once the account is connected.

A plain route whose user is not connected answers ``initialize`` like this and opens the upstream session later
(:mod:`gateway.proxy.deferred`); a virtual route lists its other upstreams' tools beside the connect tools
(:mod:`gateway.virtual.lists`).
"""

from __future__ import annotations

import re
from typing import Any

from gateway.mcp.jsonrpc import Message, RequestId
from gateway.mcp.revisions import LATEST_SESSION_VERSION, SERVER_INFO_META, SESSION_VERSIONS, STATELESS_VERSION
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired

CONNECT_TOOL_PREFIX = "connect_"
MAX_TOOL_NAME = 64
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
PRIVATE_NOW = {"ttlMs": 0, "cacheScope": "private"}  # MCP 2026-07-28 §Caching: refetch, never share across users


def connect_tool_name(name: str) -> str:
    """The tool that connects the account of the upstream called ``name`` (a route's or a member's name)."""
    return (CONNECT_TOOL_PREFIX + _NOT_ALLOWED.sub("_", name))[:MAX_TOOL_NAME]


def connect_tool(name: str, title: str) -> dict[str, Any]:
    """A tool definition that tells the user (and the model) that ``title`` needs their account."""
    return {
        "name": connect_tool_name(name),
        "title": f"Connect {title}",
        "description": (
            f"{title} needs your own account before its tools can be used. Call this tool to get the link where you "
            f"sign in to {title}; once connected, its tools are listed here."
        ),
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True, "openWorldHint": False},
    }


def connect_note(name: str, title: str, required: ReconnectRequired) -> str:
    """One line of ``instructions``: which account to connect, and where (``name``: the upstream's, as in
    :func:`connect_tool_name`)."""
    return (
        f"{title} needs your account before its tools can be used: connect it at {required.connect_url} (or call "
        f"the tool {connect_tool_name(name)})."
    )


def introduced(route: Route, params: dict[str, Any], instructions: str) -> dict[str, Any]:
    """The result of a session-era ``initialize`` the gateway answers itself: the client's revision if the gateway
    carries it, tools only (their list changes once the account is connected), the route as the server."""
    requested = params.get("protocolVersion")
    return {
        "protocolVersion": requested if requested in SESSION_VERSIONS else LATEST_SESSION_VERSION,
        "capabilities": {"tools": {"listChanged": True}},
        "serverInfo": {"name": route.key, "title": route.title, "version": "1.0.0"},
        "instructions": instructions,
    }


def discovered(route: Route, instructions: str) -> dict[str, Any]:
    """The result of a 2026-07-28 ``server/discover`` the gateway answers itself (MCP 2026-07-28 §Server
    "Discover")."""
    return {
        "resultType": "complete",
        "supportedVersions": [STATELESS_VERSION],
        "capabilities": {"tools": {}},
        "instructions": instructions,
        "_meta": {SERVER_INFO_META: {"name": route.key, "title": route.title, "version": "1.0.0"}},
        **PRIVATE_NOW,
    }


def tool_list(tools: list[dict[str, Any]], *, stateless: bool) -> dict[str, Any]:
    """A ``tools/list`` result made of connect tools (and whatever else is listed): never cached."""
    return {"tools": tools, **({"resultType": "complete", **PRIVATE_NOW} if stateless else {})}


def connected(request_id: RequestId | None, title: str, *, stateless: bool) -> list[Message]:
    """The answer to a connect tool whose account is connected by now: its result, after a ``tools/list_changed``
    notification in the session era (on the call's own SSE answer, the only stream a buffered response has)."""
    text = f"Your {title} account is connected. List the tools again to see and use its tools."
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
    if stateless:
        result["resultType"] = "complete"
        return [{"jsonrpc": "2.0", "id": request_id, "result": result}]
    return [dict(LIST_CHANGED), {"jsonrpc": "2.0", "id": request_id, "result": result}]

"""A key scoped to some tools: which ``tools/call`` of a request it may not make.

Only calls are checked: ``tools/list`` is relayed unchanged (a scoped key sees every tool of the route and is
refused when it calls one outside its list; docs/non-interactive.md explains why). The decision reads the request's
one parse (:class:`gateway.mcp.payload.Payload`), the same that is forwarded: every call of a batch, and calls sent
as notifications, are checked.
"""

from __future__ import annotations

from collections.abc import Collection

from gateway.mcp.payload import Payload


def refused_tool(payload: Payload, allowed: Collection[str]) -> str | None:
    """The first tool a ``tools/call`` of ``payload`` names outside ``allowed``, else None."""
    for call in payload.tool_calls:
        if call.name not in allowed:
            return call.audited_name
    return None

"""A key scoped to some tools: which ``tools/call`` of a request body it may not make.

Only calls are checked: ``tools/list`` is relayed unchanged (a scoped key sees every tool of the route and is
refused when it calls one outside its list; docs/non-interactive.md explains why).
"""

from __future__ import annotations

from collections.abc import Collection

from gateway import safe_json


def refused_tool(body: bytes, allowed: Collection[str]) -> str | None:
    """The first tool a ``tools/call`` in ``body`` (a message or a batch) names outside ``allowed``, else None.
    A body that is not JSON carries no call: the upstream answers it as it answers any client."""
    try:
        decoded = safe_json.loads(body)
    except ValueError:
        return None
    for message in decoded if isinstance(decoded, list) else [decoded]:
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            continue
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str) or name not in allowed:
            return name[:200] if isinstance(name, str) else "(unnamed)"
    return None

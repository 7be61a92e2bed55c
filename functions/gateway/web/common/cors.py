"""CORS for browser-based MCP clients.

Discovery documents are public: any origin may read them. The MCP endpoint answers only origins on the workspace's
allow-list (MCP transports §Security: servers MUST validate ``Origin``); requests without ``Origin`` come from
non-browser clients and pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PUBLIC_DOCUMENT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version",
    "Access-Control-Max-Age": "86400",
}

# DPoP: RFC 9449 §4.1, a browser-based client sends its proof in this header.
MCP_ALLOW_HEADERS = (
    "Authorization, Content-Type, Accept, MCP-Protocol-Version, Mcp-Session-Id, Last-Event-ID, Mcp-Method, Mcp-Name, "
    "DPoP"
)
MCP_EXPOSE_HEADERS = "WWW-Authenticate, Mcp-Session-Id, MCP-Protocol-Version"
# MCP 2026-07-28 ``Mcp-Param-{name}`` headers (a tool's parameters mirrored for routing): their names vary by tool, so
# a preflight allows the ones it asks for, when each is a plain header name of that family.
_PARAM_HEADER = re.compile(r"^mcp-param-[a-z0-9!#$%&'*+.^_`|~-]{1,64}$")


def origin_allowed(origin: str | None, allowed_origins: Iterable[str]) -> bool:
    return origin is None or origin in allowed_origins


def mcp_cors_headers(
    origin: str | None, allowed_origins: Iterable[str], *, preflight: bool = False, requested: str | None = None
) -> dict[str, str]:
    """CORS headers for an allowed browser origin on the MCP endpoint; none for other origins. ``requested``: a
    preflight's ``Access-Control-Request-Headers``, whose ``Mcp-Param-*`` names are allowed besides the fixed list."""
    if origin is None or origin not in allowed_origins:
        return {}
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": MCP_EXPOSE_HEADERS,
        "Vary": "Origin",
    }
    if preflight:
        headers.update(
            {
                "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": ", ".join([MCP_ALLOW_HEADERS, *_param_headers(requested)]),
                "Access-Control-Max-Age": "86400",
            }
        )
    return headers


def _param_headers(requested: str | None) -> list[str]:
    names = (name.strip().lower() for name in (requested or "").split(",")[:32])
    return sorted({name for name in names if _PARAM_HEADER.match(name)})

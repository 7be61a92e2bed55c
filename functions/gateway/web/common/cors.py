"""CORS for browser-based MCP clients.

Discovery documents are public: any origin may read them. The MCP endpoint answers only origins on the workspace's
allow-list (MCP transports §Security: servers MUST validate ``Origin``); requests without ``Origin`` come from
non-browser clients and pass.
"""

from __future__ import annotations

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


def origin_allowed(origin: str | None, allowed_origins: Iterable[str]) -> bool:
    return origin is None or origin in allowed_origins


def mcp_cors_headers(origin: str | None, allowed_origins: Iterable[str], *, preflight: bool = False) -> dict[str, str]:
    """CORS headers for an allowed browser origin on the MCP endpoint; none for other origins."""
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
                "Access-Control-Allow-Headers": MCP_ALLOW_HEADERS,
                "Access-Control-Max-Age": "86400",
            }
        )
    return headers

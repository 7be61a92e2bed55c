"""Which headers cross the gateway, in each direction (MCP Streamable HTTP transport).

Only the headers the transport defines are carried. Hop-by-hop headers (RFC 9110 §7.6.1) and credentials never are:
the client's gateway token must not reach the upstream, and the upstream's cookies must not reach the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

REQUEST_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "mcp-protocol-version",
        "mcp-session-id",
        "last-event-id",
        "mcp-method",
        "mcp-name",
    }
)
RESPONSE_HEADERS = frozenset({"content-type", "mcp-session-id", "mcp-protocol-version", "retry-after"})


def upstream_request_headers(client_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in client_headers if name.lower() in REQUEST_HEADERS}


def client_response_headers(upstream_headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in upstream_headers.items() if name.lower() in RESPONSE_HEADERS}

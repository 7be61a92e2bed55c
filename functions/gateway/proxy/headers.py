"""Which headers cross the gateway, in each direction (MCP Streamable HTTP transport, all revisions in use).

Only the headers the transport defines are carried: ``Accept``, ``Content-Type``, ``MCP-Protocol-Version``
(2025-06-18), ``Mcp-Session-Id``, ``Last-Event-ID``, the routing headers of 2026-07-28 (``Mcp-Method``, ``Mcp-Name``
and the ``Mcp-Param-*`` headers mirrored from tool arguments) and W3C Trace Context. Hop-by-hop headers
(RFC 9110 §7.6.1) and credentials never are: the client's ``Authorization`` and cookies must not reach the upstream
(MCP 2025-11-25 §Security "Token Passthrough"), and the upstream's ``Set-Cookie`` and ``WWW-Authenticate`` must not
reach the client. The client's ``Mcp-Session-Id`` is the gateway's sealed wrapper; the proxy replaces it with the
upstream's own id (:mod:`gateway.proxy.session_ids`). ``Mcp-Method`` and ``Mcp-Name`` are never the client's: for a
2026-07-28 request the gateway computes them from the payload it forwards (MCP 2026-07-28 §Streamable HTTP "Server
Validation": components that route on headers and components that act on the body must agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.mcp import trace_context
from gateway.mcp.payload import Payload
from gateway.mcp.revisions import is_stateless
from gateway.mcp.stateless import ROUTING_HEADERS, routing_headers

REQUEST_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "mcp-protocol-version",
        "last-event-id",
        "mcp-method",
        "mcp-name",
        "traceparent",
        "tracestate",
    }
)
PARAM_HEADER_PREFIX = "mcp-param-"  # MCP 2026-07-28 §Streamable HTTP "Custom Headers from Tool Parameters"
RESPONSE_HEADERS = frozenset({"content-type", "mcp-session-id", "mcp-protocol-version", "retry-after"})
TRACE_HEADERS = ("traceparent", "tracestate")  # W3C Trace Context
# What a resumption GET carries over from the POST it continues (plus credentials and Last-Event-ID).
RESUME_HEADERS = frozenset({"mcp-session-id", "mcp-protocol-version", "traceparent", "tracestate"})


def transport_headers(client_headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The client's MCP transport headers, by lower-case name (without ``Mcp-Session-Id``, which the proxy
    rewrites)."""
    found: dict[str, str] = {}
    for name, value in client_headers:
        lowered = name.lower()
        if lowered in REQUEST_HEADERS or lowered.startswith(PARAM_HEADER_PREFIX):
            found[lowered] = value
    return found


def upstream_request_headers(client_headers: Iterable[tuple[str, str]], payload: Payload) -> dict[str, str]:
    """The headers the upstream sees with ``payload``: the client's transport headers, the content type of the bytes
    the gateway serialized, the routing headers computed from the payload for a 2026-07-28 request (never the
    client's own), and the caller's W3C Trace Context (its headers, else its ``_meta``; only a valid one:
    :mod:`gateway.mcp.trace_context`)."""
    client_headers = list(client_headers)
    forwarded = transport_headers(client_headers)
    for name in (*ROUTING_HEADERS, trace_context.TRACEPARENT, trace_context.TRACESTATE):
        forwarded.pop(name, None)
    context = trace_context.of_request(client_headers, payload.messages)
    if context is not None:
        forwarded.update(context.headers())
    if payload.messages:
        forwarded["content-type"] = "application/json"  # the bytes are the gateway's serialization (UTF-8 JSON)
        if not payload.batch and is_stateless(forwarded.get("mcp-protocol-version")):
            forwarded.update(routing_headers(payload.messages[0]))
    return forwarded


def client_response_headers(upstream_headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in upstream_headers.items() if name.lower() in RESPONSE_HEADERS}

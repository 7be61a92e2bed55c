"""One JSON-RPC message from a virtual route to one of its upstreams, and its answer as a decoded message.

The exchange is the single-upstream proxy's (:func:`gateway.proxy.exchange.exchange`: the user's credential, one
renewal after a 401, SSE answers completed by resumption, size and redirect checks, the route's timeout), so an
upstream of a virtual route behaves exactly as it would on a route of its own. The message is serialized once
(:func:`gateway.mcp.payload.payload_of`) and the answer decoded once by the exchange; nothing here reads bytes the
gateway wrote. What comes back is either the JSON-RPC response to our request (from a JSON body or from the SSE
stream that carried it), or an :class:`UpstreamProblem` that says, for the merged answer, what went wrong.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from gateway.mcp.jsonrpc import Message
from gateway.mcp.payload import payload_of
from gateway.mcp.revisions import is_stateless
from gateway.mcp.stateless import routing_headers
from gateway.proxy.answer import Outgoing
from gateway.proxy.exchange import ExchangeFailed, exchange
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired, UpstreamCredentialProvider

logger = logging.getLogger("gateway.virtual")

ACCEPT = "application/json, text/event-stream"
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class UpstreamProblem:
    """Why an upstream gave no usable answer. ``reconnect`` is set when the user must connect it first."""

    member: str
    cause: str
    reconnect: ReconnectRequired | None = None
    session_lost: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The upstream's JSON-RPC response (``message``; None for an accepted notification) and its headers."""

    message: Message | None
    session_id: str | None
    protocol_version: str | None
    notifications: tuple[Message, ...] = ()
    """What the upstream sent before its answer on an SSE stream (progress, logging), in order."""


async def call(
    route: Route,
    provider: UpstreamCredentialProvider,
    user_id: str,
    message: Message,
    *,
    session_id: str | None,
    protocol_version: str | None,
    trace_headers: dict[str, str],
    param_headers: dict[str, str] | None = None,
) -> Answer | UpstreamProblem:
    """Send ``message`` (a request gets a fresh id of ours; a notification goes as it is) to one upstream, with the
    client's trace headers and, for a ``tools/call``, the ``Mcp-Param-*`` headers it mirrored from its arguments."""
    member = route.member or route.key
    request = dict(message)
    if "id" in request:
        request["id"] = f"gw-{next(_ids)}"
    headers = {"content-type": "application/json", "accept": ACCEPT, **trace_headers, **(param_headers or {})}
    if protocol_version:
        headers["mcp-protocol-version"] = protocol_version
    if is_stateless(protocol_version):  # MCP 2026-07-28 routing headers, from the body that goes upstream
        headers.update(routing_headers(request))
    if session_id:
        headers["mcp-session-id"] = session_id
    relayed = await exchange(provider, Outgoing(route, user_id, "POST", headers, payload_of(request)), decode=True)
    if isinstance(relayed, ExchangeFailed):
        return UpstreamProblem(member, relayed.cause, reconnect=relayed.reconnect)
    if relayed.status_code == 404 and session_id:
        return UpstreamProblem(member, "forgot its session", session_lost=True)
    if "id" not in request:
        if relayed.status_code >= 400:
            return UpstreamProblem(member, f"refused the notification (HTTP {relayed.status_code})")
        return Answer(None, relayed.headers.get("mcp-session-id"), relayed.headers.get("mcp-protocol-version"))
    messages = relayed.messages or ()
    response = next((m for m in messages if m.get("id") == request["id"] and ("result" in m or "error" in m)), None)
    if response is None:
        return UpstreamProblem(member, f"gave no JSON-RPC answer (HTTP {relayed.status_code})")
    # Requests of the upstream's own (sampling, elicitation) cannot be answered on a buffered response: dropped.
    notifications = tuple(m for m in messages if isinstance(m.get("method"), str) and "id" not in m)
    return Answer(
        response, relayed.headers.get("mcp-session-id"), relayed.headers.get("mcp-protocol-version"), notifications
    )


async def end_session(
    route: Route, provider: UpstreamCredentialProvider, user_id: str, session_id: str, protocol_version: str
) -> None:
    """DELETE one upstream session; a failure only means the upstream keeps it until it expires."""
    headers = {"mcp-session-id": session_id, "mcp-protocol-version": protocol_version}
    if isinstance(await exchange(provider, Outgoing(route, user_id, "DELETE", headers)), ExchangeFailed):
        logger.info("upstream %s: its session could not be ended", route.key)

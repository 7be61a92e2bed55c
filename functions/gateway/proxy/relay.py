"""The single-upstream proxy: relay one client request (POST or DELETE; GET in the streaming deployment) to the route's
upstream on behalf of a user.

Order of work, each step answering on its own when it must:

1. the client's ``Mcp-Session-Id`` is opened for this user and route (404 if it is not theirs, MCP §Session
   Management);
2. the payload goes upstream through the message-level exchange (:mod:`gateway.proxy.exchange`: the route's
   credential, one renewal after an upstream 401, the route's timeout) with only the transport's headers and the
   upstream session id; a provider that needs the user to reconnect makes the answer the URL-elicitation error
   (:mod:`gateway.proxy.reconnect`);
3. the upstream's session id is sealed before the client sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.mcp.codes import INTERNAL_ERROR, SESSION_NOT_FOUND
from gateway.mcp.payload import Payload
from gateway.proxy.answer import Outgoing, Relayed, error_answer
from gateway.proxy.exchange import ExchangeFailed, exchange, open_exchange
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.reconnect import reconnect_response
from gateway.proxy.session_ids import Session, SessionCodec, UnknownSession
from gateway.proxy.streaming import Streamed
from gateway.routes import Route
from gateway.upstream.credentials import UpstreamCredentialProvider


async def relay(
    route: Route,
    user_id: str,
    method: str,
    client_headers: Iterable[tuple[str, str]],
    payload: Payload,
    codec: SessionCodec,
    session_id: str | None,
    provider: UpstreamCredentialProvider,
    *,
    streaming: bool = False,
    decode: bool = False,
) -> Relayed | Streamed:
    """``payload`` is the request's one parse (:func:`gateway.mcp.payload.parse_client_body`; empty for GET and
    DELETE), already accepted; ``provider`` is the credential provider of the route's ``auth`` kind (chosen by the
    composition root). ``streaming`` (the streaming deployment): an event stream is returned as a :class:`Streamed`
    relayed as it arrives, and ``GET`` is relayed; otherwise every answer is whole. ``decode``: a whole answer's
    JSON-RPC messages are read into :attr:`Relayed.messages` (for the audit trail)."""
    session: Session | None = None
    if session_id is not None:
        try:
            session = codec.open(session_id, route_key=route.key, user_id=user_id)
        except UnknownSession:
            return error_answer(404, payload, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")
    forwarded = upstream_request_headers(client_headers, payload)
    if session is not None:
        forwarded["mcp-session-id"] = session.upstream_session_id
    url_elicitation = payload.declares_url_elicitation
    if url_elicitation is None:
        url_elicitation = session is not None and session.url_elicitation

    outgoing = Outgoing(route, user_id, method, forwarded, payload)
    answer: Relayed | Streamed | ExchangeFailed
    if streaming:
        answer = await open_exchange(provider, outgoing, decode=decode)
    else:
        answer = await exchange(provider, outgoing, decode=decode)
    if isinstance(answer, ExchangeFailed):
        return failure_answer(route, payload, answer, url_elicitation=url_elicitation)
    upstream_session_id = answer.headers.get("mcp-session-id")
    if upstream_session_id:
        sealed = codec.seal(Session(upstream_session_id, url_elicitation), route_key=route.key, user_id=user_id)
        answer.headers["mcp-session-id"] = sealed
    return answer


def failure_answer(route: Route, payload: Payload, failure: ExchangeFailed, *, url_elicitation: bool) -> Relayed:
    """The client's answer when the exchange had none: the reconnect error, or a JSON-RPC error naming the cause
    (and the upstream, unless the gateway's own store failed)."""
    if failure.reconnect is not None:
        return reconnect_response(route, payload, failure.reconnect, url_elicitation=url_elicitation)
    if failure.gateway_fault:
        answer = error_answer(failure.status, payload, INTERNAL_ERROR, failure.cause)
        answer.headers["retry-after"] = "1"
        return answer
    message = f"upstream MCP server {route.key!r} {failure.cause}"
    data = {"upstream": route.key, "cause": failure.cause}
    return error_answer(failure.status, payload, INTERNAL_ERROR, message, data)

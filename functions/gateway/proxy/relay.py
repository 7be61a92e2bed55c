"""The single-upstream proxy: relay one client request (POST or DELETE; GET in the streaming deployment) to the route's
upstream on behalf of a user.

Order of work, each step answering on its own when it must:

1. the client's ``Mcp-Session-Id`` is opened for this user and route (404 if it is not theirs, MCP §Session
   Management); in the buffered deployment a 2026-07-28 ``subscriptions/listen`` is answered at once
   (:mod:`gateway.mcp.listen`);
2. the payload goes upstream through the message-level exchange (:mod:`gateway.proxy.exchange`: the route's
   credential, one renewal after an upstream 401, the route's timeout) with only the transport's headers and the
   upstream session id; a provider that needs the user to reconnect makes the answer the URL-elicitation error
   (:mod:`gateway.proxy.reconnect`);
3. the upstream's session id is sealed before the client sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.mcp.caching import LIST_METHODS, made_private
from gateway.mcp.codes import INTERNAL_ERROR, INVALID_PARAMS, SESSION_NOT_FOUND
from gateway.mcp.input_required import MRTR_METHODS
from gateway.mcp.jsonrpc import Message
from gateway.mcp.listen import LISTEN, closed_at_once
from gateway.mcp.payload import Payload, payload_of
from gateway.mcp.revisions import is_stateless
from gateway.proxy.answer import (
    EVENT_STREAM,
    Outgoing,
    Relayed,
    error_answer,
    json_answer,
    media_type,
    stream_answer,
)
from gateway.proxy.deferred import LaterSession, LaterSessions, introduction, open_later
from gateway.proxy.exchange import ExchangeFailed, credentials_ready, exchange, open_exchange
from gateway.proxy.headers import TRACE_HEADERS, upstream_request_headers
from gateway.proxy.reconnect import Asker, reconnect_message, reconnect_response
from gateway.proxy.request_state import BadRequestState, RequestStateCodec
from gateway.proxy.session_ids import Session, SessionCodec, UnknownSession
from gateway.proxy.streaming import Streamed
from gateway.proxy.unconnected import (
    connect_note,
    connect_tool,
    connect_tool_name,
    connected,
    discovered,
    introduced,
    tool_list,
)
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired, UpstreamCredentialProvider


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
    states: RequestStateCodec | None = None,
    later: LaterSessions | None = None,
    streaming: bool = False,
    decode: bool = False,
) -> Relayed | Streamed:
    """``payload`` is the request's one parse (:func:`gateway.mcp.payload.parse_client_body`; empty for GET and
    DELETE), already accepted; ``provider`` is the credential provider of the route's ``auth`` kind (chosen by the
    composition root). ``states`` seals and opens the ``requestState`` of the gateway's own ``input_required``
    answers (MCP 2026-07-28); ``later`` keeps the upstream sessions of deferred sessions (:mod:`gateway.proxy.
    deferred`). ``streaming`` (the streaming deployment): an event stream is returned as a :class:`Streamed`
    relayed as it arrives, and ``GET`` is relayed; otherwise every answer is whole. ``decode``: a whole answer's
    JSON-RPC messages are read into :attr:`Relayed.messages` (for the audit trail)."""
    session: Session | None = None
    if session_id is not None:
        try:
            session = codec.open(session_id, route_key=route.key, user_id=user_id)
        except UnknownSession:
            return error_answer(404, payload, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")
    single = _single_request(payload)
    if not streaming and single is not None and single["method"] == LISTEN:
        # A listen stream cannot be held open on a buffered response: acknowledged and closed at once
        # (gateway.mcp.listen) rather than held upstream until the route's timeout.
        return stream_answer(list(closed_at_once(single["id"])))
    forwarded = upstream_request_headers(client_headers, payload)
    url_elicitation = payload.declares_url_elicitation
    if url_elicitation is None:
        url_elicitation = session is not None and session.url_elicitation
    stateless = session is None and is_stateless(forwarded.get("mcp-protocol-version"))
    asker = Asker(route.key, user_id, url_elicitation, stateless, states)
    if stateless and states is not None and single is not None and single["method"] in MRTR_METHODS:
        # MCP 2026-07-28: the retry of a request the gateway answered with its own input_required result.
        try:
            retry = states.resume(single, route_key=route.key, user_id=user_id)
        except BadRequestState as bad:
            return error_answer(400, payload, INVALID_PARAMS, f"Invalid params: requestState {bad.reason}")
        if retry is not None:
            payload = payload_of(retry.message)
            single = retry.message
            asker = Asker(route.key, user_id, url_elicitation, stateless, states, retry.action)
    if single is not None and _calls(single, connect_tool_name(route.server_name)):
        return await _connect_tool_call(route, user_id, payload, single, provider, asker)

    if session is not None and session.deferred:
        assert session_id is not None
        found = await _later_session(
            route, user_id, method, payload, forwarded, session, session_id, provider, later, asker
        )
        if not isinstance(found, LaterSession):
            return found
        forwarded["mcp-protocol-version"] = found.protocol_version
        if found.session_id:
            forwarded["mcp-session-id"] = found.session_id
    elif session is not None:
        forwarded["mcp-session-id"] = session.upstream_session_id

    # A list that may differ between callers must not be shared by caches (MCP 2026-07-28 §Server "Caching"): read
    # whole, whatever the deployment, to make it private.
    private_list = (
        stateless and single is not None and single["method"] in LIST_METHODS and route.lists_depend_on_caller
    )
    outgoing = Outgoing(route, user_id, method, forwarded, payload)
    answer: Relayed | Streamed | ExchangeFailed
    if streaming and not private_list:
        answer = await open_exchange(provider, outgoing, decode=decode)
    else:
        answer = await exchange(provider, outgoing, decode=decode or private_list)
    if isinstance(answer, ExchangeFailed):
        return failure_answer(route, payload, answer, asker, codec)
    if private_list and isinstance(answer, Relayed):
        answer = _made_private(answer)
    if session is not None and session.deferred:
        if answer.status_code == 404 and later is not None and session_id is not None:
            later.drop(session_id)  # the upstream forgot it: the next request opens another
        answer.headers.pop("mcp-session-id", None)  # the client keeps its deferred id
        return answer
    upstream_session_id = answer.headers.get("mcp-session-id")
    if upstream_session_id:
        sealed = codec.seal(Session(upstream_session_id, url_elicitation), route_key=route.key, user_id=user_id)
        answer.headers["mcp-session-id"] = sealed
    return answer


def failure_answer(
    route: Route, payload: Payload, failure: ExchangeFailed, asker: Asker, codec: SessionCodec | None = None
) -> Relayed:
    """The client's answer when the exchange had none: what the route says while the account is not connected
    (:mod:`gateway.proxy.unconnected`), or a JSON-RPC error naming the cause (and the upstream, unless the
    gateway's own store failed)."""
    if failure.reconnect is not None:
        return unconnected_answer(route, payload, failure.reconnect, asker, codec)
    if failure.gateway_fault:
        answer = error_answer(failure.status, payload, INTERNAL_ERROR, failure.cause)
        answer.headers["retry-after"] = "1"
        return answer
    message = f"upstream MCP server {route.key!r} {failure.cause}"
    data = {"upstream": route.key, "cause": failure.cause}
    return error_answer(failure.status, payload, INTERNAL_ERROR, message, data)


def unconnected_answer(
    route: Route, payload: Payload, required: ReconnectRequired, asker: Asker, codec: SessionCodec | None
) -> Relayed:
    """What the route answers itself while the user's account is not connected: ``initialize`` and
    ``server/discover`` succeed (naming the account to connect), ``tools/list`` holds the connect tool, ``ping`` is
    answered; anything else asks for the account in the era's form (:mod:`gateway.proxy.reconnect`)."""
    single = _single_request(payload)
    method = single["method"] if single is not None else None
    if single is None or method not in ("initialize", "server/discover", "tools/list", "ping"):
        return reconnect_response(route, payload, required, asker)
    assert single is not None
    request_id = single["id"]
    params = single.get("params") if isinstance(single.get("params"), dict) else {}
    assert isinstance(params, dict)
    note = connect_note(route.server_name, route.title, required)
    if method == "initialize" and codec is not None and not asker.stateless:
        deferred = Session(introduction(params), asker.url_elicitation, deferred=True)
        headers = {"mcp-session-id": codec.seal(deferred, route_key=route.key, user_id=asker.user_id)}
        return json_answer(200, _result(request_id, introduced(route, params, note)), headers)
    if method == "server/discover" and asker.stateless:
        return json_answer(200, _result(request_id, discovered(route, note)))
    if method == "tools/list":
        tools = [connect_tool(route.server_name, route.title)]
        return json_answer(200, _result(request_id, tool_list(tools, stateless=asker.stateless)))
    if method == "ping":
        return json_answer(200, _result(request_id, {"resultType": "complete"} if asker.stateless else {}))
    return reconnect_response(route, payload, required, asker)


async def _later_session(
    route: Route,
    user_id: str,
    method: str,
    payload: Payload,
    forwarded: dict[str, str],
    session: Session,
    session_id: str,
    provider: UpstreamCredentialProvider,
    later: LaterSessions | None,
    asker: Asker,
) -> LaterSession | Relayed:
    """The upstream session behind a deferred client session, opened now if the account is connected; or the
    answer to give instead (notifications are dropped until it exists)."""
    found = later.get(session_id) if later is not None else None
    if found is not None:
        if method == "DELETE" and later is not None:
            later.drop(session_id)
        return found
    if method == "GET":
        return Relayed(405, {"allow": "POST, DELETE"}, b"")  # no upstream stream to open yet (MCP: GET may be 405)
    if method == "DELETE" or not payload.expects_response:
        return Relayed(200 if method == "DELETE" else 202, {}, b"")
    trace = {name: forwarded[name] for name in TRACE_HEADERS if name in forwarded}
    opened = await open_later(provider, route, user_id, session.upstream_session_id, trace)
    if isinstance(opened, ExchangeFailed):
        return failure_answer(route, payload, opened, asker)
    if later is not None:
        later.put(session_id, opened)
    return opened


async def _connect_tool_call(
    route: Route, user_id: str, payload: Payload, call: Message, provider: UpstreamCredentialProvider, asker: Asker
) -> Relayed:
    """The route's connect tool: asks for the account while it is not connected, says so once it is."""
    problem = await credentials_ready(provider, route, user_id)
    if problem is not None and problem.reconnect is not None:
        return json_answer(200, reconnect_message(call, route, problem.reconnect, asker))
    if problem is not None:
        return failure_answer(route, payload, problem, asker)
    messages = connected(call["id"], route.title, stateless=asker.stateless)
    return stream_answer(messages) if len(messages) > 1 else json_answer(200, messages[0])


def _made_private(answer: Relayed) -> Relayed:
    messages, changed = made_private(answer.messages or ())
    if not changed:
        return answer
    headers = {name: value for name, value in answer.headers.items() if name != "content-type"}
    if media_type(answer.headers.get("content-type")) == EVENT_STREAM:
        return stream_answer(list(messages), headers)
    return json_answer(answer.status_code, messages[0] if len(messages) == 1 else list(messages), headers)


def _single_request(payload: Payload) -> Message | None:
    """The payload's one request (not a batch, not a notification or response), else None."""
    if payload.batch or len(payload.messages) != 1:
        return None
    message = payload.messages[0]
    return message if "id" in message and isinstance(message.get("method"), str) else None


def _calls(message: Message, tool: str) -> bool:
    params = message.get("params")
    return message.get("method") == "tools/call" and isinstance(params, dict) and params.get("name") == tool


def _result(request_id: object, result: dict[str, object]) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}

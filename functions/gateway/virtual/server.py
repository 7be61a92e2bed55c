"""A virtual route speaks MCP itself: to the client as one server, to each upstream as a client.

One POST from the client holds a request, a notification, a response or (MCP 2025-03-26) a batch, already parsed
once by the proxy (:class:`gateway.mcp.payload.Payload`); each request is answered here:

- ``initialize`` and ``server/discover`` go to every upstream at once and are merged (:mod:`gateway.virtual.handshake`);
  the client gets one session id that carries each upstream's session (:mod:`gateway.virtual.state`).
- ``tools/list``, ``prompts/list``, ``resources/list`` and ``resources/templates/list`` fan out and are merged
  (:mod:`gateway.virtual.lists`).
- ``tools/call``, ``prompts/get`` and ``completion/complete`` for a prompt go to the upstream their name belongs to,
  under its own name; ``resources/read``, ``subscribe``, ``unsubscribe`` and resource completions go to each
  upstream in turn until one knows the URI.
- Notifications (``notifications/*``) go to the upstreams they concern; ``ping`` and ``logging/setLevel`` are
  answered here (the latter after passing it on).

- ``tasks/get``, ``tasks/update`` and ``tasks/cancel`` go to the upstream that created the task
  (:mod:`gateway.virtual.tasks`); a 2026-07-28 ``subscriptions/listen`` is acknowledged and closed at once.

Partial failure: an upstream that is down or slow is left out of merged lists (logged), and a call routed to it gets
a JSON-RPC error naming it. One that needs the user's account is named in the instructions and by its connect tool
(:mod:`gateway.proxy.unconnected`), and a request that reaches it asks for the account in the client's era
(``-32042``, or an ``input_required`` result whose retry comes back to it: :mod:`gateway.proxy.reconnect`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway.mcp import sse, stateless
from gateway.mcp.codes import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, SESSION_NOT_FOUND
from gateway.mcp.input_required import MRTR_METHODS
from gateway.mcp.jsonrpc import Message, error_response
from gateway.mcp.listen import LISTEN, closed_at_once
from gateway.mcp.payload import Payload
from gateway.proxy.answer import EVENT_STREAM, Relayed, json_answer
from gateway.proxy.exchange import credentials_ready
from gateway.proxy.headers import TRACE_HEADERS, transport_headers
from gateway.proxy.reconnect import Asker, reconnect_message
from gateway.proxy.request_state import BadRequestState, RequestStateCodec
from gateway.proxy.session_ids import Session, SessionCodec, UnknownSession
from gateway.proxy.unconnected import connect_tool_name, connected
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired
from gateway.virtual import handshake, tasks
from gateway.virtual.catalog import Catalog, is_hashed, members_of
from gateway.virtual.lists import LISTS, ListCache, learn_names, merged_list
from gateway.virtual.state import VirtualState
from gateway.virtual.tasks import TASK_METHODS
from gateway.virtual.upstream_call import UpstreamProblem
from gateway.virtual.upstream_sessions import (
    MAX_LATER_SESSIONS,
    ProviderFor,
    SessionEnded,
    UpstreamSessions,
    VirtualRequest,
)

BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")
# Client notifications no upstream is concerned with: each upstream session got its own ``initialized`` when the
# gateway opened it, and a ``cancelled`` names a request id of the client's, which went upstream under an id of ours.
UNFORWARDED_NOTIFICATIONS = frozenset({"notifications/initialized", "notifications/cancelled"})


class VirtualServer:
    """The virtual routes of one container: their catalogs, a bounded list cache, and the upstream sessions opened
    after the clients' own ``initialize``."""

    def __init__(
        self,
        codec: SessionCodec,
        provider_for: ProviderFor,
        clock: Callable[[], float] = time.time,
        states: RequestStateCodec | None = None,
    ) -> None:
        """``states`` seals and opens the ``requestState`` of the gateway's own ``input_required`` answers (MCP
        2026-07-28, :mod:`gateway.proxy.request_state`)."""
        self._codec = codec
        self._provider_for = provider_for
        self._states = states
        self.lists = ListCache(clock)
        self._catalogs: dict[str, tuple[Route, Catalog]] = {}
        self._upstreams = UpstreamSessions()
        self._ended: set[str] = set()  # client sessions deleted through this container

    def catalog(self, route: Route) -> Catalog:
        """The catalog of a virtual route, built once per route (it remembers the hashed names it showed)."""
        kept = self._catalogs.get(route.key)
        if kept is None or kept[0] is not route:
            kept = (route, Catalog(members_of(route.server.upstreams or {})))
            self._catalogs[route.key] = kept
        return kept[1]

    async def handle(
        self, route: Route, user_id: str, method: str, client_headers: Iterable[tuple[str, str]], payload: Payload,
        session_id: str | None,
    ) -> Relayed:  # fmt: skip
        """Answer one client request (POST or DELETE); ``payload`` is its one parse, already accepted."""
        headers = transport_headers(client_headers)
        trace = {name: headers[name] for name in TRACE_HEADERS if name in headers}
        state, url_elicitation = VirtualState(), False
        if session_id is not None:
            try:
                session = self._codec.open(session_id, route_key=route.key, user_id=user_id)
            except UnknownSession:
                session = None
            decoded = None if session is None else VirtualState.decode(session.upstream_session_id)
            if session is None or decoded is None:
                return _error(404, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")
            state, url_elicitation = decoded, session.url_elicitation
            if session_id in self._ended:
                return _error(404, SESSION_NOT_FOUND, "this MCP session was ended: initialize a new one")
        request = VirtualRequest(
            route, user_id, self._provider_for, state, headers.get("mcp-protocol-version"), trace, session_id, headers
        )
        if method == "DELETE":
            await handshake.end_sessions(request)
            if session_id is not None:
                if len(self._ended) >= MAX_LATER_SESSIONS:
                    self._ended.clear()
                self._ended.add(session_id)
            return Relayed(200, {}, b"")
        if request.stateless:
            url_elicitation = bool(payload.declares_url_elicitation)  # 2026-07-28: declared per request in _meta
        try:
            return await self._post(request, payload, url_elicitation)
        except SessionEnded:
            return _error(404, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")

    async def _post(self, request: VirtualRequest, payload: Payload, url_elicitation: bool) -> Relayed:
        responses: list[Message] = []
        new_state: VirtualState | None = None
        for message in payload.messages:
            method = message.get("method")
            if not isinstance(method, str):
                continue  # a response to a request of ours: a buffered deployment sends none
            if "id" not in message:
                if not method.startswith("notifications/"):
                    if not payload.batch:  # MCP: requests carry ids; this is neither request nor notification
                        return _error(400, INVALID_REQUEST, f"Invalid Request: {method} without an id")
                    continue
                await self._notify(request, message)
                continue
            if request.stateless:
                refusal = stateless.request_problem(message, request.client_headers)
                if refusal is None and method in stateless.REMOVED_METHODS:
                    refusal = {"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"}
                if refusal is not None:
                    responses.append({"jsonrpc": "2.0", "id": message.get("id"), "error": refusal})
                    continue
            if method == "initialize":
                response, new_state, url_elicitation = await handshake.initialize(request, message)
            else:
                response = await self._request(request, message, url_elicitation)
            responses.append(response)
        if not responses:
            return Relayed(202, {}, b"")
        headers: dict[str, str] = {}
        if new_state is not None:
            session = Session(new_state.encode(), url_elicitation)
            headers["mcp-session-id"] = self._codec.seal(session, route_key=request.route.key, user_id=request.user_id)
        if not payload.batch and request.stateless and stateless.http_status(responses[0]) != 200:
            # MCP 2026-07-28 §Streamable HTTP: the error code decides the status (an unknown method is 404).
            return json_answer(stateless.http_status(responses[0]), responses[0])
        if not payload.batch and request.streamed:
            # MCP Streamable HTTP: a POST's answer may be an SSE stream whose last event is the response; the
            # upstream's notifications for this request (progress, logging) go first, as it sent them.
            events = [*request.streamed, responses[0]]
            stream = "".join(sse.event(event) for event in events).encode()
            return Relayed(200, {**headers, "content-type": EVENT_STREAM}, stream, tuple(events))
        return json_answer(200, responses if payload.batch else responses[0], headers)

    async def _notify(self, request: VirtualRequest, message: Message) -> None:
        """A client notification, to each upstream it concerns (MCP §Notifications: the upstream sessions behind the
        client's; none for those listed in ``UNFORWARDED_NOTIFICATIONS``)."""
        if message["method"] in UNFORWARDED_NOTIFICATIONS:
            return
        members = [member for member in request.route.members() if self._upstreams.in_session(request, member)]
        await asyncio.gather(*(self._upstreams.send(request, member, message) for member in members))

    async def _request(self, request: VirtualRequest, message: Message, url_elicitation: bool) -> Message:
        method = str(message["method"])
        request_id = message.get("id")
        asker = Asker(request.route.key, request.user_id, url_elicitation, request.stateless, self._states)
        retried: str | None = None
        if request.stateless and self._states is not None and method in MRTR_METHODS:
            # MCP 2026-07-28: the retry of a request the gateway answered with its own input_required result goes to
            # the upstream it was about, with what the client carried for that upstream restored.
            try:
                retry = self._states.resume(message, route_key=request.route.key, user_id=request.user_id)
            except BadRequestState as bad:
                return error_response(request_id, INVALID_PARAMS, f"Invalid params: requestState {bad.reason}")
            if retry is not None:
                message, retried = retry.message, retry.member
                asker = Asker(asker.route_key, asker.user_id, url_elicitation, True, self._states, retry.action)
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        catalog = self.catalog(request.route)
        empty: dict[str, Any] = {"resultType": "complete"} if request.stateless else {}
        if method == "ping":
            return {"jsonrpc": "2.0", "id": request_id, "result": empty}
        if method == "server/discover" and request.stateless:
            return await handshake.discover(request, self._upstreams, message)
        if method == LISTEN and request.stateless:
            # No stream can be held open here (a virtual route answers whole): acknowledged and closed at once.
            acknowledged, closed = closed_at_once(message["id"])
            request.streamed.append(acknowledged)
            return closed
        if method in LISTS:
            return await merged_list(request, self._upstreams, catalog, self.lists, method, message)
        if method == "logging/setLevel":
            members = request.route.members()
            await asyncio.gather(*(self._upstreams.send(request, member, message) for member in members))
            return {"jsonrpc": "2.0", "id": request_id, "result": empty}
        if method == "tools/call" and isinstance(params.get("name"), str):
            connecting = self._connect_tool(request.route, params["name"])
            if connecting is not None:
                return await self._connect_call(request, connecting, message, asker)
        if method in ("tools/call", "prompts/get"):
            kind = "tool" if method == "tools/call" else "prompt"
            target = await self._target(request, catalog, kind, params.get("name"))
            if target is None or (retried is not None and target[0].member != retried):
                return error_response(request_id, INVALID_PARAMS, f"Unknown {kind}: {params.get('name')!r}")
            member, original = target
            forwarded = {**message, "params": {**params, "name": original}}
            return await self._routed(request, member, forwarded, message, asker)
        if method == "completion/complete":
            ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
            assert isinstance(ref, dict)
            if ref.get("type") == "ref/prompt":
                target = await self._target(request, catalog, "prompt", ref.get("name"))
                if target is None:
                    return error_response(request_id, INVALID_PARAMS, f"Unknown prompt: {ref.get('name')!r}")
                member, original = target
                forwarded = {**message, "params": {**params, "ref": {**ref, "name": original}}}
                return await self._routed(request, member, forwarded, message, asker)
            return await self._first_that_knows(request, message, request_id, asker)
        if method in BY_URI:
            first = retried or catalog.resource_member(params.get("uri"))
            return await self._first_that_knows(request, message, request_id, asker, first=first, only=retried)
        if method in TASK_METHODS:
            return await self._task(request, message, request_id, asker)
        return error_response(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _target(
        self, request: VirtualRequest, catalog: Catalog, kind: str, exposed: object
    ) -> tuple[Route, str] | None:
        """The upstream route and its own name for a tool or prompt name the client saw. A hashed name the catalog
        has not shown yet is learnt from its upstream's list, once per container."""
        if not isinstance(exposed, str):
            return None
        found = catalog.tool_target(exposed) if kind == "tool" else catalog.prompt_target(exposed)
        if found is None and is_hashed(exposed):
            found = catalog.known(kind, exposed)
            member = catalog.member_of(exposed)
            route = None if member is None else request.route.member_named(member.name)
            if found is None and route is not None:
                await learn_names(request, self._upstreams, catalog, route, f"{kind}s/list")
                found = catalog.known(kind, exposed)
        if found is None:
            return None
        route = request.route.member_named(found[0].name)
        return None if route is None else (route, found[1])

    async def _routed(
        self, request: VirtualRequest, member: Route, message: Message, asked: Message, asker: Asker
    ) -> Message:
        """``message`` to ``member`` under the upstream's own names; ``asked`` is the client's request (its id, and
        the names a ``requestState`` is bound to)."""
        request_id = asked.get("id")
        answer = await self._upstreams.send(request, member, message)
        if isinstance(answer, UpstreamProblem):
            if answer.reconnect is not None:
                return reconnect_message(asked, member, answer.reconnect, asker, member=member.member or "")
            return error_response(
                request_id, INTERNAL_ERROR, f"upstream {answer.member!r} of {request.route.key!r} {answer.cause}",
                {"upstream": answer.member, "cause": answer.cause},
            )  # fmt: skip
        request.streamed.extend(answer.notifications)
        response = _in_era(request, {**(answer.message or {}), "jsonrpc": "2.0", "id": request_id})
        return tasks.exposed(response, member.member or "") if message.get("method") == "tools/call" else response

    def _connect_tool(self, route: Route, name: str) -> Route | None:
        """The member whose connect tool ``name`` is (:mod:`gateway.proxy.unconnected`), if it is one."""
        for member in route.members():
            if name == connect_tool_name(member.member or ""):
                return member
        return None

    async def _connect_call(self, request: VirtualRequest, member: Route, message: Message, asker: Asker) -> Message:
        """A member's connect tool: asks for the account while it is not connected, says so once it is."""
        problem = await credentials_ready(request.provider_for(member), member, request.user_id)
        if problem is not None and problem.reconnect is not None:
            return reconnect_message(message, member, problem.reconnect, asker, member=member.member or "")
        if problem is not None:
            cause = f"upstream {member.member!r} of {request.route.key!r} {problem.cause}"
            return error_response(message.get("id"), INTERNAL_ERROR, cause, {"upstream": member.member})
        *notifications, answer = connected(message.get("id"), member.title, stateless=request.stateless)
        request.streamed.extend(notifications)
        return answer

    async def _first_that_knows(
        self,
        request: VirtualRequest,
        message: Message,
        request_id: Any,
        asker: Asker,
        *,
        first: str | None = None,
        only: str | None = None,
    ) -> Message:
        """Resources have no prefix (their URIs are the upstreams'): ask each upstream in turn (``first`` first, the
        one a tool points to or a retry names; ``only`` that one). An upstream that needs the user's account is
        asked for it when no other knows the resource."""
        last: Message | None = None
        unconnected: tuple[Route, ReconnectRequired] | None = None
        members = sorted(request.route.members(), key=lambda member: member.member != first)
        for member in members:
            if only is not None and member.member != only:
                continue
            answer = await self._upstreams.send(request, member, message)
            if isinstance(answer, UpstreamProblem):
                if answer.reconnect is not None and unconnected is None:
                    unconnected = (member, answer.reconnect)
                continue
            if answer.message is not None:
                if "result" in answer.message:
                    request.streamed.extend(answer.notifications)
                    return _in_era(request, {**answer.message, "jsonrpc": "2.0", "id": request_id})
                last = answer.message
        if unconnected is not None:
            member, required = unconnected
            return reconnect_message(message, member, required, asker, member=member.member or "")
        if last is not None:
            return {**last, "jsonrpc": "2.0", "id": request_id}
        return error_response(request_id, INVALID_PARAMS, "no upstream of this route knows that resource")

    async def _task(self, request: VirtualRequest, message: Message, request_id: Any, asker: Asker) -> Message:
        """``tasks/get``, ``tasks/update``, ``tasks/cancel``: to the upstream that created the task (its id, as the
        client saw it, names it: :mod:`gateway.virtual.tasks`)."""
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        found = tasks.owner(params.get("taskId"))
        member = None if found is None else request.route.member_named(found[0])
        if found is None or member is None:
            return error_response(request_id, INVALID_PARAMS, f"Unknown task: {params.get('taskId')!r}")
        forwarded = {**message, "params": {**params, "taskId": found[1]}}
        answer = await self._routed(request, member, forwarded, message, asker)
        return tasks.exposed(answer, member.member or "")


def _in_era(request: VirtualRequest, response: Message) -> Message:
    """An upstream's answer as the client's revision has it: MCP 2026-07-28 §Basic "Responses" requires
    ``resultType`` on every result, which an upstream of the session era never sends (``complete``: the only kind
    it has)."""
    result = response.get("result")
    if request.stateless and isinstance(result, dict) and "resultType" not in result:
        return {**response, "result": {"resultType": "complete", **result}}
    return response


def _error(status: int, code: int, message: str) -> Relayed:
    return json_answer(status, error_response(None, code, message))

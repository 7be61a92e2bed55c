"""A virtual route speaks MCP itself: to the client as one server, to each upstream as a client.

One POST from the client may hold a request, a notification, a response or a batch; each request is answered here:

- ``initialize`` is sent to every upstream at once; the client gets the union of their capabilities and one session
  id that carries each upstream's session (:mod:`gateway.virtual.state`). Upstreams that fail are left out.
- ``tools/list``, ``prompts/list``, ``resources/list`` and ``resources/templates/list`` fan out concurrently (the
  answer takes as long as the slowest upstream, not their sum) and are merged; tools and prompts are filtered,
  projected and prefixed (:mod:`gateway.virtual.catalog`); the cursor carries each upstream's position.
- ``tools/call``, ``prompts/get`` and ``completion/complete`` for a prompt go to the upstream their name belongs to,
  under its own name; ``resources/read``, ``subscribe``, ``unsubscribe`` and resource completions go to each
  upstream in turn until one knows the URI.
- Notifications go to every upstream; ``ping`` and ``logging/setLevel`` are answered here (the latter after
  passing it on).

Partial failure: an upstream that is down, slow or needs the user's account is left out of merged lists (logged),
and a call routed to it gets a JSON-RPC error naming it, or ``-32042`` with its connect link.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from gateway import safe_json
from gateway.proxy.forward import EVENT_STREAM, JSON, Relayed
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.jsonrpc import INTERNAL_ERROR, PARSE_ERROR, SESSION_NOT_FOUND, Inbound
from gateway.proxy.reconnect import reconnect_response
from gateway.proxy.sessions import Session, SessionCodec, UnknownSession
from gateway.routes import Route
from gateway.virtual import modern
from gateway.virtual.catalog import Catalog, Member, is_hashed, members_of
from gateway.virtual.merge import cache_directives, cause_of, merge_capabilities, response_error, result_of
from gateway.virtual.sessions import (
    LATEST_VERSION,
    MAX_LATER_SESSIONS,
    STATELESS_VERSION,
    SUPPORTED_VERSIONS,
    Exchange,
    ProviderFor,
    SessionEnded,
    UpstreamSessions,
)
from gateway.virtual.state import BadCursor, UpstreamSession, VirtualState, decode_cursor, encode_cursor
from gateway.virtual.upstream_call import Answer, UpstreamProblem, call, end_session

logger = logging.getLogger("gateway.virtual")

ONE_REQUEST = Inbound(request_ids=(0,))  # a single request, as the reconnect answer is built for

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
TRACE_HEADERS = ("traceparent", "tracestate")
LISTS = {  # method -> (key of the items in the result, how the catalog shows them)
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
}
BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")


class VirtualServer:
    """The virtual routes of one container (a list cache per user and route when the route asks for one)."""

    def __init__(self, codec: SessionCodec, provider_for: ProviderFor, clock: Callable[[], float] = time.time) -> None:
        self._codec = codec
        self._provider_for = provider_for
        self._clock = clock
        self._lists: dict[tuple[str, str, str, str], tuple[float, dict[str, Any]]] = {}
        self._upstreams = UpstreamSessions()
        self._ended: set[str] = set()  # client sessions deleted through this container

    async def handle(
        self, route: Route, user_id: str, method: str, client_headers: Iterable[tuple[str, str]], body: bytes,
        session_id: str | None,
    ) -> Relayed:  # fmt: skip
        headers = upstream_request_headers(client_headers)
        trace = {name: headers[name] for name in TRACE_HEADERS if name in headers}
        state, url_elicitation = VirtualState(), False
        if session_id is not None:
            try:
                session = self._codec.open(session_id, route_key=route.key, user_id=user_id)
            except UnknownSession:
                session = None
            decoded = None if session is None else VirtualState.decode(session.upstream_session_id)
            if session is None or decoded is None:
                return _error(404, None, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")
            state, url_elicitation = decoded, session.url_elicitation
            if session_id in self._ended:
                return _error(404, None, SESSION_NOT_FOUND, "this MCP session was ended: initialize a new one")
        exchange = Exchange(
            route, user_id, self._provider_for, state, headers.get("mcp-protocol-version"), trace, session_id, headers
        )
        if method == "DELETE":
            await self._end_sessions(exchange)
            if session_id is not None:
                if len(self._ended) >= MAX_LATER_SESSIONS:
                    self._ended.clear()
                self._ended.add(session_id)
            return Relayed(200, {}, b"")
        try:
            return await self._post(exchange, body, url_elicitation)
        except SessionEnded:
            return _error(404, None, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")

    async def _post(self, exchange: Exchange, body: bytes, url_elicitation: bool) -> Relayed:
        try:
            decoded = safe_json.loads(body)  # too deep, or not JSON: answered here (nothing is forwarded)
        except ValueError as problem:
            return _error(400, None, PARSE_ERROR, f"Parse error: {problem}")
        batch = isinstance(decoded, list)
        messages = decoded if batch else [decoded]
        if not messages or not all(isinstance(message, dict) for message in messages):
            return _error(400, None, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC message or batch")
        responses: list[dict[str, Any]] = []
        new_state: VirtualState | None = None
        for message in messages:
            method = message.get("method")
            if not isinstance(method, str):
                continue  # a response to a request of ours: a buffered deployment sends none
            if "id" not in message:
                await self._notify(exchange, message)
                continue
            if exchange.stateless:
                refusal = modern.rejection(message, exchange.client_headers)
                if refusal is None and method in modern.REMOVED_METHODS:
                    refusal = {"code": METHOD_NOT_FOUND, "message": f"Method not found: {method}"}
                if refusal is not None:
                    responses.append({"jsonrpc": "2.0", "id": message.get("id"), "error": refusal})
                    continue
            if method == "initialize":
                response, new_state, url_elicitation = await self._initialize(exchange, message)
            else:
                response = await self._request(exchange, message, url_elicitation)
            responses.append(response)
        if not responses:
            return Relayed(202, {}, b"")
        headers = {"content-type": JSON}
        if new_state is not None:
            session = Session(new_state.encode(), url_elicitation)
            headers["mcp-session-id"] = self._codec.seal(
                session, route_key=exchange.route.key, user_id=exchange.user_id
            )
        if not batch and exchange.stateless and modern.http_status(responses[0]) != 200:
            # MCP 2026-07-28 §Streamable HTTP: the error code decides the status (an unknown method is 404).
            return Relayed(modern.http_status(responses[0]), {"content-type": JSON}, safe_dumps(responses[0]))
        if not batch and exchange.streamed:
            # MCP Streamable HTTP: a POST's answer may be an SSE stream whose last event is the response; the
            # upstream's notifications for this request (progress, logging) go first, as it sent them.
            events = [*exchange.streamed, responses[0]]
            stream = "".join(f"event: message\ndata: {json.dumps(event, ensure_ascii=False)}\n\n" for event in events)
            return Relayed(200, {**headers, "content-type": EVENT_STREAM}, stream.encode())
        payload: Any = responses if batch else responses[0]
        return Relayed(200, headers, safe_dumps(payload))

    # --- initialize and sessions -----------------------------------------------------------------------------

    async def _initialize(
        self, exchange: Exchange, message: dict[str, Any]
    ) -> tuple[dict[str, Any], VirtualState, bool]:
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        requested = params.get("protocolVersion")
        version = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
        members = exchange.route.members()
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {**params, "protocolVersion": version},
        }
        answers = await asyncio.gather(
            *(
                call(
                    member, exchange.provider_for(member), exchange.user_id, initialize,
                    session_id=None, protocol_version=None, trace_headers=exchange.trace,
                )
                for member in members
            )
        )  # fmt: skip
        sessions: dict[str, UpstreamSession] = {}
        capabilities: dict[str, Any] = {}
        instructions: list[str] = []
        problems: list[str] = []
        ready = []
        for member, answer in zip(members, answers, strict=True):
            name = member.member or member.key
            result = result_of(answer)
            if result is None:
                problems.append(f"{name}: {cause_of(answer)}")
                continue
            negotiated = result.get("protocolVersion") if isinstance(result.get("protocolVersion"), str) else version
            assert isinstance(answer, Answer)
            sessions[name] = UpstreamSession(answer.session_id, str(negotiated))
            merge_capabilities(capabilities, result.get("capabilities"))
            if isinstance(result.get("instructions"), str) and result["instructions"].strip():
                instructions.append(f"[{name}] {result['instructions'].strip()}")
            # MCP lifecycle: the client side of each upstream session says it is ready.
            ready.append(
                call(
                    member, exchange.provider_for(member), exchange.user_id,
                    {"jsonrpc": "2.0", "method": "notifications/initialized"},
                    session_id=answer.session_id, protocol_version=str(negotiated), trace_headers=exchange.trace,
                )
            )  # fmt: skip
        await asyncio.gather(*ready)
        for problem in problems:
            logger.warning("virtual route %s: upstream left out at initialize: %s", exchange.route.key, problem)
        client_capabilities = params.get("capabilities")
        elicitation = client_capabilities.get("elicitation") if isinstance(client_capabilities, dict) else None
        url_elicitation = isinstance(elicitation, dict) and isinstance(elicitation.get("url"), dict)
        if not sessions:
            response = response_error(message.get("id"), INTERNAL_ERROR, "no upstream of this route answered", {
                "upstreams": problems,
            })  # fmt: skip
            return response, VirtualState(), url_elicitation
        result = {
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": {"name": exchange.route.key, "title": exchange.route.title, "version": "1.0.0"},
        }
        if instructions:
            result["instructions"] = "\n\n".join(instructions)
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}, VirtualState(sessions), url_elicitation

    async def _end_sessions(self, exchange: Exchange) -> None:
        """DELETE: end every upstream session behind the client's (MCP §Session Management); best effort."""
        ends = []
        for member in exchange.route.members():
            session = exchange.state.upstreams.get(member.member or "")
            if session is not None and session.session_id:
                ends.append(
                    end_session(
                        member, exchange.provider_for(member), exchange.user_id, session.session_id,
                        session.protocol_version,
                    )
                )  # fmt: skip
        await asyncio.gather(*ends)

    async def _notify(self, exchange: Exchange, message: dict[str, Any]) -> None:
        await asyncio.gather(*(self._upstreams.send(exchange, member, message) for member in exchange.route.members()))

    async def _request(self, exchange: Exchange, message: dict[str, Any], url_elicitation: bool) -> dict[str, Any]:
        method = str(message["method"])
        request_id = message.get("id")
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        assert isinstance(params, dict)
        catalog = Catalog(members_of(exchange.route.server.upstreams or {}))
        empty: dict[str, Any] = {"resultType": "complete"} if exchange.stateless else {}
        if method == "ping":
            return {"jsonrpc": "2.0", "id": request_id, "result": empty}
        if method == "server/discover" and exchange.stateless:
            return await self._discover(exchange, message)
        if method in LISTS:
            return await self._list(exchange, catalog, method, request_id, params)
        if method == "logging/setLevel":
            await asyncio.gather(*(self._upstreams.send(exchange, m, message) for m in exchange.route.members()))
            return {"jsonrpc": "2.0", "id": request_id, "result": empty}
        if method in ("tools/call", "prompts/get"):
            kind = "tool" if method == "tools/call" else "prompt"
            target = await self._target(exchange, catalog, kind, params.get("name"))
            if target is None:
                return response_error(request_id, INVALID_PARAMS, f"Unknown {kind}: {params.get('name')!r}")
            member, original = target
            forwarded = {**message, "params": {**params, "name": original}}
            return await self._routed(exchange, member, forwarded, request_id, url_elicitation)
        if method == "completion/complete":
            ref = params.get("ref") if isinstance(params.get("ref"), dict) else {}
            assert isinstance(ref, dict)
            if ref.get("type") == "ref/prompt":
                target = await self._target(exchange, catalog, "prompt", ref.get("name"))
                if target is None:
                    return response_error(request_id, INVALID_PARAMS, f"Unknown prompt: {ref.get('name')!r}")
                member, original = target
                forwarded = {**message, "params": {**params, "ref": {**ref, "name": original}}}
                return await self._routed(exchange, member, forwarded, request_id, url_elicitation)
            return await self._first_that_knows(exchange, message, request_id)
        if method in BY_URI:
            return await self._first_that_knows(exchange, message, request_id)
        return response_error(request_id, METHOD_NOT_FOUND, f"Method not found: {method}")

    async def _discover(self, exchange: Exchange, message: dict[str, Any]) -> dict[str, Any]:
        """MCP 2026-07-28 ``server/discover``: what the upstreams that speak the stateless revision offer, merged."""
        members = exchange.route.members()
        answers = await asyncio.gather(*(self._upstreams.send(exchange, member, message) for member in members))
        capabilities: dict[str, Any] = {}
        instructions: list[str] = []
        results = []
        for member, answer in zip(members, answers, strict=True):
            result = result_of(answer)
            offered = self._upstreams.legacy_capabilities(member)
            if result is None and offered is not None:
                # an upstream of an older revision, reached through a session: what its initialize offered
                merge_capabilities(capabilities, offered)
                continue
            versions = result.get("supportedVersions") if result is not None else None
            if result is None or not isinstance(versions, list) or STATELESS_VERSION not in versions:
                logger.warning("virtual route %s: %s left out of server/discover", exchange.route.key, member.member)
                continue
            results.append(result)
            merge_capabilities(capabilities, result.get("capabilities"))
            if isinstance(result.get("instructions"), str) and result["instructions"].strip():
                instructions.append(f"[{member.member}] {result['instructions'].strip()}")
        if not results and not capabilities:
            return response_error(message.get("id"), INTERNAL_ERROR, "no upstream of this route answered")
        discovered: dict[str, Any] = {
            "supportedVersions": [STATELESS_VERSION],
            "capabilities": capabilities,
            "_meta": {modern.SERVER_INFO_META: {"name": exchange.route.key, "version": "1.0.0"}},
            **cache_directives(results),
        }
        if instructions:
            discovered["instructions"] = "\n\n".join(instructions)
        return {"jsonrpc": "2.0", "id": message.get("id"), "result": discovered}

    async def _list(
        self, exchange: Exchange, catalog: Catalog, method: str, request_id: Any, params: dict[str, Any]
    ) -> dict[str, Any]:
        key = LISTS[method]
        members = exchange.route.members()
        positions: dict[str, str] | None = None
        if "cursor" in params:
            try:
                positions = decode_cursor(params["cursor"], {member.member or "" for member in members})
            except BadCursor as bad:
                return response_error(request_id, INVALID_PARAMS, str(bad))
            members = [member for member in members if (member.member or "") in positions]
        cache_key = (exchange.route.key, exchange.user_id, method, str(params.get("cursor", "")))
        cached = self._lists.get(cache_key)
        if cached is not None and cached[0] > self._clock():
            return {"jsonrpc": "2.0", "id": request_id, "result": cached[1]}
        meta = {"_meta": params["_meta"]} if isinstance(params.get("_meta"), dict) else {}
        answers = await asyncio.gather(
            *(
                self._upstreams.send(
                    exchange, member,
                    {"jsonrpc": "2.0", "id": 0, "method": method,
                     "params": {**meta, "cursor": positions[member.member or ""]} if positions else meta},
                )
                for member in members
            )
        )  # fmt: skip
        items: list[Any] = []
        next_positions: dict[str, str] = {}
        results: list[dict[str, Any]] = []
        for member, answer in zip(members, answers, strict=True):
            name = member.member or ""
            result = result_of(answer)
            if result is not None:
                results.append(result)
            if result is None:
                logger.warning(
                    "virtual route %s: %s left out of %s: %s", exchange.route.key, name, method, cause_of(answer)
                )
                continue
            listed = result.get(key) if isinstance(result.get(key), list) else []
            assert isinstance(listed, list)
            entry = catalog.member(name)
            if entry is None:
                continue
            if method == "tools/list":
                items += catalog.tools(entry, listed)
            elif method == "prompts/list":
                items += catalog.prompts(entry, listed)
            else:
                items += [item for item in listed if isinstance(item, dict)]
            if isinstance(result.get("nextCursor"), str) and result["nextCursor"]:
                next_positions[name] = result["nextCursor"]
        merged: dict[str, Any] = {key: items}
        if exchange.stateless:
            merged.update(cache_directives(results))
        next_cursor = encode_cursor(next_positions)
        if next_cursor is not None:
            merged["nextCursor"] = next_cursor
        seconds = exchange.route.server.list_cache_seconds
        if seconds > 0:
            self._lists[cache_key] = (self._clock() + seconds, merged)
        return {"jsonrpc": "2.0", "id": request_id, "result": merged}

    async def _target(
        self, exchange: Exchange, catalog: Catalog, kind: str, exposed: object
    ) -> tuple[Route, str] | None:
        """The upstream route and its own name for a tool or prompt name the client saw."""
        if not isinstance(exposed, str):
            return None
        direct = catalog.tool_target(exposed) if kind == "tool" else catalog.prompt_target(exposed)
        found: tuple[Member, str] | None = direct
        if found is None and is_hashed(exposed):  # a long or odd name: look it up in its upstream's list
            member = catalog.member_of(exposed)
            if member is None:
                return None
            route = exchange.route.member_named(member.name)
            if route is None:
                return None
            listed = await self._all_items(exchange, route, "tools/list" if kind == "tool" else "prompts/list")
            original = (
                catalog.find_tool(member, exposed, listed)
                if kind == "tool"
                else catalog.find_prompt(member, exposed, listed)
            )
            found = None if original is None else (member, original)
        if found is None:
            return None
        route = exchange.route.member_named(found[0].name)
        return None if route is None else (route, found[1])

    async def _all_items(self, exchange: Exchange, member: Route, method: str) -> list[Any]:
        """Every page of one upstream's list (to look up a hashed name)."""
        key, items, cursor = LISTS[method], [], None
        for _ in range(20):
            params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
            answer = await self._upstreams.send(
                exchange, member, {"jsonrpc": "2.0", "id": 0, "method": method, "params": params}
            )
            result = result_of(answer)
            if result is None or not isinstance(result.get(key), list):
                break
            items += result[key]
            cursor = result.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return items

    async def _routed(
        self, exchange: Exchange, member: Route, message: dict[str, Any], request_id: Any, url_elicitation: bool
    ) -> dict[str, Any]:
        answer = await self._upstreams.send(exchange, member, message)
        if isinstance(answer, UpstreamProblem):
            if answer.reconnect is not None:
                # the single-upstream proxy's answer for one request, then given the client's id
                relayed = reconnect_response(member, ONE_REQUEST, answer.reconnect, url_elicitation=url_elicitation)
                response: dict[str, Any] = safe_json.loads(relayed.body)
                response["id"] = request_id
                return response
            return response_error(
                request_id, INTERNAL_ERROR, f"upstream {answer.member!r} of {exchange.route.key!r} {answer.cause}",
                {"upstream": answer.member, "cause": answer.cause},
            )  # fmt: skip
        exchange.streamed.extend(answer.notifications)
        return {**(answer.message or {}), "jsonrpc": "2.0", "id": request_id}

    async def _first_that_knows(self, exchange: Exchange, message: dict[str, Any], request_id: Any) -> dict[str, Any]:
        """Resources have no prefix (their URIs are the upstreams'): ask each upstream in turn."""
        last: dict[str, Any] | None = None
        for member in exchange.route.members():
            answer = await self._upstreams.send(exchange, member, message)
            if isinstance(answer, Answer) and answer.message is not None:
                if "result" in answer.message:
                    exchange.streamed.extend(answer.notifications)
                    return {**answer.message, "jsonrpc": "2.0", "id": request_id}
                last = answer.message
        if last is not None:
            return {**last, "jsonrpc": "2.0", "id": request_id}
        return response_error(request_id, INVALID_PARAMS, "no upstream of this route knows that resource")


def _error(status: int, request_id: Any, code: int, message: str) -> Relayed:
    return Relayed(status, {"content-type": JSON}, safe_dumps(response_error(request_id, code, message)))


def safe_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

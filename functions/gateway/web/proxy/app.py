"""ASGI app of the proxy function: ``/{workspace}/{server}/mcp`` (bare Starlette: the hot path).

Per request on a warm container: the body is parsed once (:func:`gateway.mcp.payload.parse_client_body`: every
decision below reads that parse, and what goes upstream is serialized from it; a body it refuses is answered 400
and forwarded nowhere), the token is verified locally (cached public keys, no KMS call; a token verified before is
remembered until it expires), the grant's status comes from the container's cache or one DynamoDB read
(:mod:`gateway.proxy.grant_status`), and the request is relayed by :func:`gateway.proxy.relay.relay` over the
container's pooled HTTP client, or answered by the virtual server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as Path

from gateway.mcp import trace_context
from gateway.mcp.jsonrpc import RequestId
from gateway.mcp.outcome import outcomes_by_id, request_outcome
from gateway.mcp.payload import NO_PAYLOAD, Payload, parse_client_body
from gateway.mcp.stateless import header_refusal
from gateway.observability import Observation, Spans, add_log_keys, observation
from gateway.proxy.answer import Relayed, json_answer
from gateway.proxy.relay import relay
from gateway.proxy.session_ids import SessionCodec
from gateway.proxy.streaming import Streamed
from gateway.routes import Route
from gateway.storage.records import ToolCall
from gateway.upstream.credentials import UpstreamCredentialProvider
from gateway.web.common.cors import mcp_cors_headers, origin_allowed
from gateway.web.common.errors import exception_handlers
from gateway.web.common.responses import error_response
from gateway.web.common.services import LearnBaseUrl
from gateway.web.proxy.caller import Caller, CallerServices, authenticate, tool_refusal

if TYPE_CHECKING:
    from gateway.after_answer import AfterAnswer
    from gateway.audit import AuditTrail
    from gateway.proxy.deferred import LaterSessions
    from gateway.proxy.request_state import RequestStateCodec
    from gateway.usage import UsageRecorder
    from gateway.virtual.server import VirtualServer  # built on first use by a virtual route

ALLOWED_METHODS = "POST, DELETE, OPTIONS"  # and GET in the streaming deployment, on a plain route

logger = logging.getLogger("gateway.proxy")


class ProxyServices(CallerServices, Protocol):
    """What the proxy needs of its container, each built once per cold start."""

    @property
    def session_codec(self) -> SessionCodec: ...

    @property
    def request_states(self) -> RequestStateCodec: ...

    @property
    def later_sessions(self) -> LaterSessions: ...

    def credential_provider(self, route: Route) -> UpstreamCredentialProvider: ...

    @property
    def virtual_server(self) -> VirtualServer: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def after_answer(self) -> AfterAnswer: ...

    @property
    def usage(self) -> UsageRecorder: ...

    @property
    def spans(self) -> Spans: ...

    @property
    def streams_responses(self) -> bool: ...


async def mcp_endpoint(runtime: ProxyServices, request: Request) -> Response:
    received = time.perf_counter()
    workspace_name = request.path_params["workspace"]
    server_name = request.path_params["server"]
    route = runtime.routes.get(workspace_name, server_name)
    if route is None:
        if runtime.routes.workspace(workspace_name) is None:
            return error_response(404, "not_found", f"no workspace {workspace_name!r} on this gateway")
        return error_response(404, "not_found", f"no MCP server {server_name!r} in workspace {workspace_name!r}")

    # MCP transports §Security: servers MUST validate Origin (403 for a disallowed one).
    origin = request.headers.get("origin")
    allowed_origins = route.workspace.allowed_origins
    if not origin_allowed(origin, allowed_origins):
        return error_response(403, "forbidden", f"origin {origin!r} is not allowed for workspace {workspace_name!r}")
    if request.method == "OPTIONS":
        requested = request.headers.get("access-control-request-headers")
        return Response(
            status_code=204, headers=mcp_cors_headers(origin, allowed_origins, preflight=True, requested=requested)
        )
    cors = mcp_cors_headers(origin, allowed_origins)

    # The one parse of the body: every decision below reads it, and what goes upstream is serialized from it. It is
    # made when first needed, so a caller turned away at the door costs no parse.
    body = await request.body() if request.method == "POST" else b""
    parsed: list[Payload] = []

    def one_parse() -> Payload:
        if not parsed:
            version = request.headers.get("mcp-protocol-version")
            parsed.append(parse_client_body(body, protocol_version=version) if request.method == "POST" else NO_PAYLOAD)
        return parsed[0]

    # Who calls: an access token or a gateway API key (gateway.web.proxy.caller), or the answer instead.
    claims = await authenticate(runtime, request, route, one_parse, cors)
    if isinstance(claims, Response):
        return claims
    add_log_keys(client_id=claims.client_id, user_id=claims.user_id)

    streaming = runtime.streams_responses and not route.is_virtual
    if request.method == "GET" and not streaming:
        # A buffered response cannot hold an SSE stream open (nor can a virtual route merge several): the transport
        # lets servers answer 405.
        return Response(status_code=405, headers={**cors, "Allow": ALLOWED_METHODS})
    payload = one_parse()
    refusal = payload.refusal or (None if route.is_virtual else header_refusal(payload, request.headers))
    if refusal is not None:  # nothing the gateway did not understand is forwarded
        return _response(json_answer(refusal.status, refusal.response()), cors)
    refused_call = tool_refusal(claims, payload)
    if refused_call is not None:
        return _response(refused_call, cors)
    context = trace_context.of_request(request.headers.items(), payload.messages)
    if context is not None:
        add_log_keys(trace_id=context.trace_id)  # the caller's W3C trace, in every log line of this request
    started = time.perf_counter()
    relayed: Relayed | Streamed
    with runtime.spans.span(
        "upstream", route=route.key, method=payload.method, tool=payload.tool,
        w3c_trace_id=context.trace_id if context is not None else None,
    ):  # fmt: skip
        if route.is_virtual:
            relayed = await runtime.virtual_server.handle(
                route, claims.user_id, request.method, request.headers.items(), payload,
                request.headers.get("mcp-session-id"),
            )  # fmt: skip
        else:
            relayed = await relay(
                route,
                claims.user_id,
                request.method,
                request.headers.items(),
                payload,
                runtime.session_codec,
                request.headers.get("mcp-session-id"),
                runtime.credential_provider(route),
                states=runtime.request_states,
                later=runtime.later_sessions,
                streaming=streaming,
                decode=bool(payload.tool_calls),
            )
    seen = observation(request.scope)
    if seen is not None:
        seen.upstream_ms = (time.perf_counter() - started) * 1000
        seen.method = payload.method if request.method == "POST" else request.method
        seen.tool = payload.tool
        seen.client_id, seen.user_id = claims.client_id, claims.user_id
    if isinstance(relayed, Streamed):
        return _streamed_response(runtime, route, claims, payload, relayed, (received, started), request, cors)
    if payload.tool_calls:
        outcomes = outcomes_by_id(relayed.messages or ())
        _record_tool_calls(runtime, route, claims, payload, relayed.status_code, outcomes, (received, started), seen)
    return _response(relayed, cors)


def _response(relayed: Relayed, cors: dict[str, str]) -> Response:
    return Response(relayed.body, status_code=relayed.status_code, headers={**relayed.headers, **cors})


def _record_tool_calls(
    runtime: ProxyServices,
    route: Route,
    claims: Caller,
    payload: Payload,
    status: int,
    outcomes: dict[RequestId, str],
    times: tuple[float, float],
    seen: Observation | None,
) -> None:
    """One ``tool.called`` event per ``tools/call`` of the payload (each call of a batch), with how it ended, and
    its count in the usage rollups, written after the answer has left where the deployment allows
    (:mod:`gateway.after_answer`). ``times``: when the request arrived and when the upstream exchange began."""
    now = time.perf_counter()
    received, started = times
    total_ms, upstream_ms = (now - received) * 1000, (now - started) * 1000
    ended = [(call.audited_name, request_outcome(status, outcomes, call.request_id)) for call in payload.tool_calls]
    if seen is not None:
        for _, outcome in ended:
            seen.tool_outcome = outcome

    def record() -> None:
        for tool, outcome in ended:
            _record_tool_call(runtime, route, claims, tool, outcome, total_ms=total_ms, upstream_ms=upstream_ms)

    runtime.after_answer.defer(record)


def _record_tool_call(
    runtime: ProxyServices, route: Route, claims: Caller, tool: str, ended: str, *, total_ms: float, upstream_ms: float
) -> None:
    """The audit trail's ``tool.called`` event (who called which tool on which route, how it ended, how long) and
    the call's count in the usage rollups the admin console's Overview reads: recorded together, from the same
    facts, so that whatever moves one off the request path moves both. Neither ever fails the call."""
    runtime.audit.record(
        "tool.called", workspace=route.workspace_name, route_key=route.key, user_id=claims.user_id,
        client_id=claims.client_id, grant_id=claims.grant_id, tool=tool, outcome=ended,
        duration_ms=round(upstream_ms),
    )  # fmt: skip
    runtime.usage.record(
        ToolCall(
            workspace=route.workspace_name, route_key=route.key, tool=tool, client_id=claims.client_id,
            user_id=claims.user_id, at=runtime.now(), outcome=ended, total_ms=total_ms, upstream_ms=upstream_ms,
        )
    )  # fmt: skip


def _streamed_response(
    runtime: ProxyServices,
    route: Route,
    claims: Caller,
    payload: Payload,
    streamed: Streamed,
    times: tuple[float, float],
    request: Request,
    cors: dict[str, str],
) -> StreamingResponse:
    """The upstream's event stream relayed as it arrives; its upstream time and the tool call's audit event are
    recorded when it ends."""
    seen = observation(request.scope)

    async def relayed_body() -> AsyncIterator[bytes]:
        try:
            async for chunk in streamed.body:
                yield chunk
        finally:
            elapsed_ms = (time.perf_counter() - times[1]) * 1000
            if seen is not None:
                seen.upstream_ms = elapsed_ms
            if payload.tool_calls:
                _record_tool_calls(
                    runtime, route, claims, payload, streamed.status_code, streamed.watch.outcomes, times, seen
                )

    headers = {**streamed.headers, **cors, "cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(relayed_body(), status_code=streamed.status_code, headers=headers)


def create_app(services: ProxyServices) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return await mcp_endpoint(services, request)

    return Starlette(
        routes=[Path("/{workspace}/{server}/mcp", endpoint, methods=["GET", "POST", "DELETE", "OPTIONS"])],
        middleware=[Middleware(LearnBaseUrl, state=services)],
        exception_handlers=dict(exception_handlers()),
    )

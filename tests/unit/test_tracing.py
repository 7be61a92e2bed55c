"""W3C Trace Context through the proxy, and X-Ray spans with tracing on.

A caller's ``traceparent``/``tracestate`` (headers, or the ``params._meta`` keys of MCP SEP-414 that 2026-07-28 clients
use) reach the upstream as headers; an invalid one is not forwarded. With tracing on, each request is an X-Ray
subsegment of the gateway's own work with the upstream call inside it, annotated with the route, the tool and the
caller's W3C trace id (so a trace is found from the client's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from mangum import Mangum

from gateway.config import parse_config
from gateway.mcp import trace_context
from gateway.observability import ObserveRequests, XRaySpans
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _call(upstream_url: str, headers: dict[str, str], body: dict[str, Any], *, tracing: bool = False) -> Any:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    runtime = memory_runtime(parse_config(data), tracing=tracing)
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice")
    handler = Mangum(ObserveRequests(create_app(runtime), "proxy", sink=None, spans=runtime.spans), lifespan="off")
    event = {
        "version": "2.0", "routeKey": "ANY /{workspace}/{server}/mcp", "rawPath": "/demo/echo/mcp",
        "rawQueryString": "",
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json",
                    "accept": "application/json, text/event-stream", "host": "gw.example.com", **headers},
        "requestContext": {"http": {"method": "POST", "path": "/demo/echo/mcp", "protocol": "HTTP/1.1",
                                    "sourceIp": "203.0.113.9"}, "requestId": "r1", "stage": "$default"},
        "body": json.dumps(body), "isBase64Encoded": False,
    }  # fmt: skip
    return handler(event, cast(Any, None))


def _tool_call(meta: dict[str, str] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": "echo", "arguments": {"t": "x"}}
    if meta is not None:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def test_the_callers_trace_context_headers_reach_the_upstream(upstream: ScriptedUpstream) -> None:
    response = _call(upstream.url, {"traceparent": PARENT, "tracestate": "congo=t61rcWkgMzE"}, _tool_call())
    assert response["statusCode"] == 200
    assert upstream.last.headers["traceparent"] == PARENT
    assert upstream.last.headers["tracestate"] == "congo=t61rcWkgMzE"


def test_a_trace_context_in_meta_reaches_the_upstream_as_headers_and_in_the_body(upstream: ScriptedUpstream) -> None:
    # Given a request whose context is only in params._meta (MCP SEP-414)
    response = _call(upstream.url, {}, _tool_call({"traceparent": OTHER, "tracestate": "rojo=00f067aa0ba902b7"}))

    # Then the upstream sees it as headers, and the body's _meta unchanged
    assert response["statusCode"] == 200
    assert upstream.last.headers["traceparent"] == OTHER
    assert upstream.last.headers["tracestate"] == "rojo=00f067aa0ba902b7"
    assert json.loads(upstream.last.body)["params"]["_meta"]["traceparent"] == OTHER


@pytest.mark.parametrize(
    "value",
    ["garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
)
def test_an_invalid_traceparent_is_not_forwarded(upstream: ScriptedUpstream, value: str) -> None:
    _call(upstream.url, {"traceparent": value, "tracestate": "a=b"}, _tool_call())
    assert "traceparent" not in upstream.last.headers and "tracestate" not in upstream.last.headers


def test_the_header_wins_over_meta_and_fields_are_read() -> None:
    context = trace_context.of_request([("Traceparent", PARENT)], [_tool_call({"traceparent": OTHER})])
    assert context is not None and context.traceparent == PARENT
    assert context.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" and context.parent_id == "00f067aa0ba902b7"
    assert context.sampled is True
    assert trace_context.parse(PARENT, "x" * 600) == trace_context.TraceContext(PARENT)  # an oversized state drops


def test_with_tracing_on_the_gateways_work_and_the_upstream_call_are_x_ray_subsegments(
    upstream: ScriptedUpstream,
) -> None:
    # Given an open X-Ray segment, as Lambda's active tracing opens one per invocation
    from aws_xray_sdk.core import xray_recorder

    segment = xray_recorder.begin_segment("proxy-invocation")
    try:
        # When a traced call arrives with the caller's W3C context
        response = _call(upstream.url, {"traceparent": PARENT}, _tool_call(), tracing=True)
    finally:
        xray_recorder.end_segment()

    # Then the gateway's work is a subsegment holding the upstream call, each annotated for search
    assert response["statusCode"] == 200
    [gateway] = segment.subsegments
    assert gateway.name == "gateway" and gateway.annotations["w3c_trace_id"] == PARENT[3:35]
    [upstream_call] = gateway.subsegments
    assert upstream_call.name == "upstream"
    assert upstream_call.annotations == {
        "route": "demo/echo", "method": "tools/call", "tool": "echo", "w3c_trace_id": PARENT[3:35]
    }  # fmt: skip


def test_a_span_outside_any_segment_never_fails_the_request() -> None:
    spans = XRaySpans()
    with spans.span("lonely", route="demo/echo"):
        pass

"""Each request's EMF metrics (valid Embedded Metric Format, errors by origin, the gateway/upstream latency split) and
JSON logs that carry the request's correlation id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, cast

import pytest
from mangum import Mangum

from gateway.config import parse_config
from gateway.observability import Observation, ObserveRequests, configure_logging, reset_logging
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _gateway(upstream_url: str) -> tuple[Any, list[str], str]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    runtime = memory_runtime(parse_config(data))
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    documents: list[str] = []
    handler = Mangum(ObserveRequests(create_app(runtime), "proxy", sink=documents.append), lifespan="off")
    return handler, documents, grant_backed_token(runtime, route, subject="alice")


def _event(path: str, token: str, body: dict[str, Any], request_id: str = "req-123") -> dict[str, Any]:
    return {
        "version": "2.0", "routeKey": "ANY /{workspace}/{server}/mcp", "rawPath": path, "rawQueryString": "",
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json",
                    "accept": "application/json, text/event-stream", "host": "gw.example.com"},
        "requestContext": {"http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
                           "requestId": request_id, "stage": "$default"},
        "body": json.dumps(body), "isBase64Encoded": False,
    }  # fmt: skip


TOOLS_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": "x"}}}


def _metrics(document: str) -> dict[str, Any]:
    emf: dict[str, Any] = json.loads(document)
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    # EMF: every metric the directive names is a top-level member, every dimension too; a timestamp in ms
    assert isinstance(emf["_aws"]["Timestamp"], int)
    assert directive["Namespace"] == "McpGateway"
    for dimension_set in directive["Dimensions"]:
        assert all(name in emf for name in dimension_set)
    return {metric["Name"]: emf[metric["Name"]] for metric in directive["Metrics"]} | {"route": emf["route"]}


def test_a_proxied_call_emits_valid_emf_with_the_latency_split(upstream: ScriptedUpstream) -> None:
    handler, documents, token = _gateway(upstream.url)
    response = handler(_event("/demo/echo/mcp", token, TOOLS_CALL), cast(Any, None))
    assert response["statusCode"] == 200
    [document] = documents
    metrics = _metrics(document)
    assert metrics["route"] == "demo/echo" and metrics["Requests"] == [1.0]
    latency, upstream_ms, gateway_ms = (
        metrics["Latency"][0],
        metrics["UpstreamLatency"][0],
        metrics["GatewayLatency"][0],
    )
    assert upstream_ms > 0 and gateway_ms >= 0
    assert abs(upstream_ms + gateway_ms - latency) < 0.01
    assert not any(name.startswith("Errors") for name in metrics)
    assert metrics["ColdStart"] == [1.0]  # the container's first request
    # Per route for the dashboard, per function for the alarms, per tool for a call the upstream answered
    dimensions = json.loads(document)["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert dimensions == [["service"], ["route", "service"], ["route", "service", "tool"]]
    assert json.loads(document)["method"] == "tools/call" and json.loads(document)["tool"] == "echo"


@pytest.mark.parametrize(
    ("path", "use_token", "metric"),
    [("/demo/nowhere/mcp", True, "ErrorsClient"), ("/demo/echo/mcp", False, "ErrorsClient")],
)
def test_client_errors_are_counted_by_origin(
    upstream: ScriptedUpstream, path: str, use_token: bool, metric: str
) -> None:
    handler, documents, token = _gateway(upstream.url)
    handler(_event(path, token if use_token else "forged", TOOLS_CALL), cast(Any, None))
    assert _metrics(documents[0])[metric] == [1.0]


def test_an_upstream_that_is_down_counts_as_an_upstream_error() -> None:
    handler, documents, token = _gateway("http://127.0.0.1:9/mcp")
    assert handler(_event("/demo/echo/mcp", token, TOOLS_CALL), cast(Any, None))["statusCode"] == 502
    metrics = _metrics(documents[0])
    assert metrics["ErrorsUpstream"] == [1.0] and "ErrorsGateway" not in metrics


@pytest.mark.parametrize(
    ("outcome", "errors"),
    [("ok", set()), ("input_required", set()), ("auth_required", {"ErrorsAuth"}), ("error", {"ErrorsUpstream"})],
)
def test_a_tool_calls_outcome_counts_as_the_error_of_its_origin(outcome: str, errors: set[str]) -> None:
    """Answered with a 200: a tool's own failure is the upstream's, an account to connect (-32042) is auth, and an
    ``input_required`` (MCP 2026-07-28: the call waits for the client's input, its retry is a call) is no error."""
    seen = Observation(route="demo/echo", method="tools/call", tool="echo", tool_outcome=outcome, upstream_ms=3.0)
    document = ObserveRequests(cast(Any, None), "proxy", sink=None).metrics(seen, 200, 5.0)
    assert {name for name in _metrics(json.dumps(document)) if name.startswith("Errors")} == errors


def test_logs_are_json_lines_with_the_correlation_id(
    upstream: ScriptedUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("proxy", "INFO")
    try:
        handler, _, token = _gateway("http://127.0.0.1:9/mcp")  # the upstream failure is logged
        handler(_event("/demo/echo/mcp", token, TOOLS_CALL, request_id="req-corr-42"), cast(Any, None))
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        reset_logging()
    logged = [line for line in lines if line.get("correlation_id") == "req-corr-42"]
    assert logged, lines
    assert all(line["route"] == "demo/echo" and line["workspace"] == "demo" for line in logged)
    assert all(line["user_id"] == "alice" for line in logged)  # known once the token is verified
    assert {"level", "message", "timestamp", "service"} <= set(logged[0])


def test_the_aws_sdks_informational_lines_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a function's logging as a cold start configures it (INFO, as deployed and under `make dev`)
    previous = {name: logging.getLogger(name).level for name in ("botocore", "boto3", "botocore.credentials")}
    for name in previous:
        logging.getLogger(name).setLevel(logging.NOTSET)
    configure_logging("proxy", "INFO")
    try:
        # When botocore finds its credentials, as at every cold start
        logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
        logging.getLogger("gateway.proxy").info("a line of the gateway's own")
        err = capsys.readouterr().err
    finally:
        reset_logging()
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)

    # Then only the gateway's own line is written
    assert "Found credentials" not in err
    assert "a line of the gateway's own" in err


def test_a_well_known_url_names_no_route() -> None:
    documents: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    handler = Mangum(ObserveRequests(app, "metadata", sink=documents.append), lifespan="off")
    event = _event("/.well-known/oauth-protected-resource/demo/echo/mcp", "x", {})
    event["requestContext"]["http"]["method"] = "GET"
    handler(event, cast(Any, None))
    assert json.loads(documents[0])["route"] == "-"

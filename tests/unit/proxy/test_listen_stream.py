"""MCP 2026-07-28 ``subscriptions/listen`` on a plain route: the buffered deployment, which cannot hold a stream open,
acknowledges and closes it at once instead of holding the request upstream until the route's timeout (Claude Code
2.1 waited that long before it reported the server connected); the streaming deployment relays it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

MCP = "/demo/echo/mcp"
META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
LISTEN = {
    "jsonrpc": "2.0",
    "id": "listen-1",
    "method": "subscriptions/listen",
    "params": {"_meta": META, "notifications": {"toolsListChanged": True}},
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "subscriptions/listen",
}


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _runtime(upstream_url: str, *, streaming: bool) -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"].update(upstream=upstream_url, timeout_seconds=5)
    return memory_runtime(parse_config(data), response_streaming=streaming)


def _post(runtime: Runtime) -> Any:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice")
    return TestClient(create_app(runtime)).post(
        MCP, json=LISTEN, headers={**HEADERS, "Authorization": f"Bearer {token}"}
    )


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]


async def _holds_open(request: Request, body: bytes) -> Response:
    """A 2026-07-28 server: acknowledges the listen and keeps its stream open."""

    async def forever() -> AsyncIterator[bytes]:
        yield (
            b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",'
            b'"params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"listen-1"},"notifications":{}}}\n\n'
        )
        await asyncio.Event().wait()

    return StreamingResponse(forever(), media_type="text/event-stream")


def test_the_buffered_deployment_acknowledges_and_closes_a_listen_at_once(upstream: ScriptedUpstream) -> None:
    # Given an upstream that would hold a listen stream open (as a 2026-07-28 server does)
    upstream.answer = _holds_open

    # When a 2026-07-28 client opens one through the buffered deployment
    response = _post(_runtime(upstream.url, streaming=False))

    # Then it is answered by the gateway (nothing went upstream to be held until the route's timeout)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert upstream.seen == []
    # And in the revision's own terms: acknowledged first (honouring no notification type: none can be delivered
    # later on this response), then the graceful closure, both naming the subscription
    acknowledged, closed = _events(response.text)
    assert acknowledged["method"] == "notifications/subscriptions/acknowledged"
    assert acknowledged["params"] == {
        "_meta": {"io.modelcontextprotocol/subscriptionId": "listen-1"},
        "notifications": {},
    }
    assert closed == {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "result": {"resultType": "complete", "_meta": {"io.modelcontextprotocol/subscriptionId": "listen-1"}},
    }


def test_the_streaming_deployment_relays_a_listen_to_the_upstream(upstream: ScriptedUpstream) -> None:
    # Given an upstream that acknowledges and then ends the stream
    async def answer(request: Request, body: bytes) -> Response:
        events = (
            'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged",'
            '"params":{"_meta":{"io.modelcontextprotocol/subscriptionId":"listen-1"},'
            '"notifications":{"toolsListChanged":true}}}\n\n'
            'event: message\ndata: {"jsonrpc":"2.0","id":"listen-1","result":{"resultType":"complete"}}\n\n'
        )
        return Response(events, media_type="text/event-stream")

    upstream.answer = answer

    # When the client opens a listen stream through the streaming deployment
    response = _post(_runtime(upstream.url, streaming=True))

    # Then the upstream got it and its stream is what the client reads
    assert [seen.method for seen in upstream.seen] == ["POST"]
    assert json.loads(upstream.last.body)["method"] == "subscriptions/listen"
    acknowledged, _ = _events(response.text)
    assert acknowledged["params"]["notifications"] == {"toolsListChanged": True}

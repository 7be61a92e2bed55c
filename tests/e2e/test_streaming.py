"""The streaming deployment (template ``ProxyResponseMode=streaming``) end to end: the dev server serves the proxy
as the Lambda Web Adapter does (its ASGI app under uvicorn, answers streamed as written), in front of an upstream
whose tools run long and ask for input mid-call; the client is the official Python SDK.

- a tool that works for 60 s reports progress along the way: the notifications reach the client as they happen
  (their arrival times span the call), and the result arrives after them;
- a tool that elicits input in the middle of its call completes with the client's answer;
- ``GET`` opens the upstream's stream for server-initiated messages (405 in the buffered deployment).
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import yaml
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitResult, TextContent

from infra.dev import EXAMPLE_CONFIG
from tests.e2e.conftest import gateway_process
from tests.fixtures.long_call_server import LongCallServer, start_long_call_server
from tests.support.oauth_http import obtain_token

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HOST = "127.0.0.1"
WORKSPACE = "demo"
ROUTE = "long"
LONG_CALL_SECONDS = 60.0
PROGRESS_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class StreamingGateway:
    url: str
    token: str

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/{WORKSPACE}/{ROUTE}/mcp"


@pytest.fixture(scope="module")
def long_call_upstream() -> Iterator[LongCallServer]:
    server = start_long_call_server()
    try:
        yield server
    finally:
        server.stop()


def streaming_config(upstream_url: str) -> dict[str, Any]:
    """examples/gateway.yaml plus route demo/long in front of the long-call fixture, with a timeout only the
    streaming deployment allows."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    config["workspaces"][WORKSPACE]["servers"][ROUTE] = {
        "title": "Long calls",
        "upstream": upstream_url,
        "timeout_seconds": 180,
    }
    return config


@pytest.fixture(scope="module")
def streaming_gateway(long_call_upstream: LongCallServer, free_port: Callable[[], int]) -> Iterator[StreamingGateway]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="streaming-gateway-") as directory:
        config = streaming_config(long_call_upstream.url)
        gateway = gateway_process(config, Path(directory), port, mode="streaming")
        try:
            url = gateway.wait_for("ready ", "the streaming gateway")
            token = obtain_token(url, WORKSPACE, ROUTE, client_name="streaming e2e").access_token
            yield StreamingGateway(url, token)
        finally:
            gateway.stop()


@dataclass
class ProgressLog:
    started: float
    arrivals: list[tuple[float, float]]  # (seconds since the call started, progress)


async def call_long_task(gateway: StreamingGateway) -> tuple[ProgressLog, float, list[str]]:
    """Call ``long_task`` through the gateway; returns each progress notification's arrival time, the result's,
    and the result's text."""
    headers = {"Authorization": f"Bearer {gateway.token}"}
    log = ProgressLog(time.monotonic(), [])

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        log.arrivals.append((time.monotonic() - log.started, progress))

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        streamable_http_client(gateway.mcp_url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        log.started = time.monotonic()
        result = await session.call_tool(
            "long_task",
            {"seconds": LONG_CALL_SECONDS, "every": PROGRESS_EVERY_SECONDS},
            read_timeout_seconds=LONG_CALL_SECONDS * 2,
            progress_callback=on_progress,
        )
        answered = time.monotonic() - log.started
    assert not result.is_error, result
    return log, answered, [item.text for item in result.content if isinstance(item, TextContent)]


def test_a_minute_long_tool_call_streams_its_progress_as_it_happens(streaming_gateway: StreamingGateway) -> None:
    # Given a tool that works for 60 s and reports progress every 5 s, behind the streaming deployment
    # When the official SDK calls it through the gateway
    log, answered, texts = asyncio.run(call_long_task(streaming_gateway))

    # Then the call completes (beyond the buffered deployment's 30 s) with the tool's answer
    steps = int(LONG_CALL_SECONDS / PROGRESS_EVERY_SECONDS)
    assert texts == [f"finished {steps} steps"]
    assert answered >= LONG_CALL_SECONDS
    # and every progress notification arrived, in order, each when the tool sent it: the first near the start, the
    # rest spread over the minute, none held back until the answer (buffered, all would arrive with the result)
    progress = [value for _, value in log.arrivals]
    assert progress == [float(step) for step in range(steps + 1)]
    times = [arrived for arrived, _ in log.arrivals]
    assert times[0] < PROGRESS_EVERY_SECONDS
    assert answered - times[0] >= LONG_CALL_SECONDS - PROGRESS_EVERY_SECONDS
    assert times[steps // 2] < answered - LONG_CALL_SECONDS / 3
    assert all(later - earlier >= PROGRESS_EVERY_SECONDS / 2 for earlier, later in itertools.pairwise(times))


async def call_greet_user(gateway: StreamingGateway) -> tuple[list[str], list[str]]:
    headers = {"Authorization": f"Bearer {gateway.token}"}
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"name": "Ada"})

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        streamable_http_client(gateway.mcp_url, http_client=http) as (read, write),
        ClientSession(read, write, elicitation_callback=answer) as session,
    ):
        await session.initialize()
        result = await session.call_tool("greet_user", {})
    assert not result.is_error, result
    return asked, [item.text for item in result.content if isinstance(item, TextContent)]


def test_a_tool_that_asks_for_input_mid_call_completes(streaming_gateway: StreamingGateway) -> None:
    # Given a tool that elicits the user's name in the middle of its call
    # When the SDK, answering elicitations, calls it through the streaming gateway
    asked, texts = asyncio.run(call_greet_user(streaming_gateway))

    # Then the upstream's request reached the client during the call, and the call completed with its answer
    assert asked == ["What is your name?"]
    assert texts == ["Hello, Ada!"]


def test_get_opens_the_upstreams_stream_for_server_messages(streaming_gateway: StreamingGateway) -> None:
    # Given an MCP session through the streaming gateway
    headers = {
        "Authorization": f"Bearer {streaming_gateway.token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with httpx.Client(timeout=30) as http:
        opened = http.post(streaming_gateway.mcp_url, json=initialize, headers=headers)
        assert opened.status_code == 200, opened.text
        session = opened.headers["mcp-session-id"]
        with_session = {**headers, "Mcp-Session-Id": session, "Accept": "text/event-stream"}
        http.post(
            streaming_gateway.mcp_url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**headers, "Mcp-Session-Id": session},
        )

        # When the client opens the GET stream the transport defines
        with http.stream("GET", streaming_gateway.mcp_url, headers=with_session) as stream:
            # Then the gateway opens the upstream's stream and relays it (the buffered deployment answers 405)
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")

        # and the session ends cleanly
        ended = http.delete(streaming_gateway.mcp_url, headers={**headers, "Mcp-Session-Id": session})
        assert ended.status_code in (200, 204)

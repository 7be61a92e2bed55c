"""The streaming deployment's relay (``GATEWAY_RESPONSE_STREAMING``) through the real app to a scripted upstream:
event streams pass as written, the client resumes a stream itself, a stream cut short ends with an error for each
unanswered request, GET is relayed, and whole answers are checked as in the buffered deployment."""

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
ACCEPT = "application/json, text/event-stream"
TOOLS_CALL: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "x"}},
}
ANSWER = 'data: {"jsonrpc":"2.0","id":7,"result":{"content":[]}}\n\n'
PROGRESS = 'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n'


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _runtime(upstream_url: str, *, timeout: float = 2.0, streaming: bool = True) -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"].update(upstream=upstream_url, timeout_seconds=timeout)
    return memory_runtime(parse_config(data), response_streaming=streaming)


class Gateway:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime))

    def headers(self, **extra: str) -> dict[str, str]:
        route = self.runtime.routes.get("demo", "echo")
        assert route is not None
        return {"Authorization": f"Bearer {grant_backed_token(self.runtime, route, subject='alice')}", **extra}

    def post(self, message: Any) -> Any:
        return self.client.post(MCP, json=message, headers=self.headers(Accept=ACCEPT))


@pytest.fixture
def gateway(upstream: ScriptedUpstream) -> Gateway:
    return Gateway(_runtime(upstream.url))


def sse(*events: str) -> Response:
    return Response("".join(events), media_type="text/event-stream")


def answer_with(response: Response) -> Any:
    async def answer(request: Request, body: bytes) -> Response:
        return response

    return answer


def error_events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in text.splitlines()
        if line.startswith("data: ") and '"error"' in line
    ]


def test_an_event_stream_passes_as_written_and_the_call_is_audited(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    stream = "id: 1\nretry: 10\ndata: \n\n" + PROGRESS + ANSWER
    upstream.answer = answer_with(sse(stream))

    response = gateway.post(TOOLS_CALL)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == stream
    now = gateway.runtime.now()
    events = gateway.runtime.audit_log.events("demo", since=now - 60, until=now + 60)
    called = [event for event in events if event.kind == "tool.called"]
    assert [(event.detail.get("tool"), event.detail.get("outcome")) for event in called] == [("echo", "ok")]


def test_a_stream_closed_early_with_an_event_id_is_left_for_the_client_to_resume(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # Given an upstream that closes the POST's stream after a priming event (SSE polling)
    upstream.answer = answer_with(sse("id: e1\nretry: 100\ndata: \n\n"))

    # When the streaming gateway relays it
    response = gateway.post(TOOLS_CALL)

    # Then the client gets the stream as written (it resumes with GET + Last-Event-ID itself), and the gateway did
    # not resume it upstream on the client's behalf
    assert response.status_code == 200
    assert response.text == "id: e1\nretry: 100\ndata: \n\n"
    assert [seen.method for seen in upstream.seen] == ["POST"]


def test_a_stream_that_ends_without_an_answer_or_an_event_id_ends_with_an_error(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.answer = answer_with(sse(PROGRESS))

    response = gateway.post(TOOLS_CALL)

    assert response.status_code == 200
    assert response.text.startswith(PROGRESS)
    (error,) = error_events(response.text)
    assert error["id"] == 7
    assert "'demo/echo' closed its event stream before answering" in error["error"]["message"]
    assert error["error"]["data"] == {
        "upstream": "demo/echo",
        "cause": "closed its event stream before answering the request",
    }


def test_a_stream_past_the_route_timeout_ends_with_an_error_naming_it(upstream: ScriptedUpstream) -> None:
    # Given an upstream that starts answering, then works longer than the route's timeout
    async def slow(request: Request, body: bytes) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield PROGRESS.encode()
            await asyncio.sleep(30)
            yield ANSWER.encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    upstream.answer = slow
    gateway = Gateway(_runtime(upstream.url, timeout=1))

    # When the call goes through the streaming gateway
    response = gateway.post(TOOLS_CALL)

    # Then what the upstream sent reached the client, followed by the JSON-RPC error for the unanswered call
    assert response.text.startswith(PROGRESS)
    (error,) = error_events(response.text)
    assert error["id"] == 7
    assert "did not answer within 1 s" in error["error"]["message"]


def test_get_is_relayed_to_the_upstreams_stream(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    upstream.answer = answer_with(sse(PROGRESS))

    response = gateway.client.get(MCP, headers=gateway.headers(Accept="text/event-stream", **{"Last-Event-ID": "4"}))

    assert response.status_code == 200
    assert response.text == PROGRESS
    assert upstream.last.method == "GET"
    assert upstream.last.headers["last-event-id"] == "4"
    assert "authorization" not in upstream.last.headers


def test_an_upstream_without_a_get_stream_answers_405_through_the_gateway(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    upstream.answer = answer_with(Response(status_code=405, headers={"Allow": "POST"}))

    response = gateway.client.get(MCP, headers=gateway.headers(Accept="text/event-stream"))

    assert response.status_code == 405


def test_the_buffered_deployment_answers_get_405_without_calling_the_upstream(upstream: ScriptedUpstream) -> None:
    gateway = Gateway(_runtime(upstream.url, streaming=False))

    response = gateway.client.get(MCP, headers=gateway.headers(Accept="text/event-stream"))

    assert response.status_code == 405
    assert "GET" not in response.headers["allow"]
    assert upstream.seen == []


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected_status", "cause"),
    [
        (200, "text/html", "<html>login</html>", 502, "non-MCP content (content type text/html)"),
        (503, "application/json", "{}", 502, "answered HTTP 503"),
        (400, "text/plain", "Bad Request", 400, "answered HTTP 400"),
    ],
)
def test_whole_answers_are_checked_as_in_the_buffered_deployment(
    gateway: Gateway,
    upstream: ScriptedUpstream,
    status: int,
    content_type: str,
    body: str,
    expected_status: int,
    cause: str,
) -> None:
    upstream.answer = answer_with(Response(body, status_code=status, media_type=content_type or None))

    response = gateway.post(TOOLS_CALL)

    assert response.status_code == expected_status
    assert cause in response.json()["error"]["message"]

"""The proxy's relay through the real app (Starlette TestClient) to a scripted upstream on 127.0.0.1: sessions bound
to user and route, SSE relay and resumption, credentials, reconnect errors and explicit failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.routes import Route
from gateway.runtime import Runtime
from gateway.storage.ports import StorageError
from gateway.upstream.credentials import ReconnectRequired, UpstreamAuthUnavailable
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.hostile_json import HOSTILE_BODIES
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

MCP = "/demo/echo/mcp"
ACCEPT = "application/json, text/event-stream"
CONNECT_URL = "https://gw.example.com/demo/echo/connect?for=alice"


def initialize(*, url_elicitation: bool = False, request_id: int = 1) -> dict[str, Any]:
    capabilities: dict[str, Any] = {"elicitation": {"form": {}, "url": {}}} if url_elicitation else {}
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t"}},
    }


TOOLS_CALL: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 7,
    "method": "tools/call",
    "params": {"name": "echo", "arguments": {"text": "x"}},
}


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


def _runtime(upstream_url: str, *, timeout: float = 2.0) -> Runtime:
    data = example_config_data()
    servers = data["workspaces"]["demo"]["servers"]
    servers["echo"].update(upstream=upstream_url, timeout_seconds=timeout)
    servers["other"] = {"upstream": upstream_url, "timeout_seconds": timeout}
    servers["keyed"] = {
        "upstream": upstream_url,
        "timeout_seconds": timeout,
        "auth": {"type": "headers", "headers": {"X-Api-Key": "env:TEST_UPSTREAM_API_KEY"}},
    }
    return memory_runtime(parse_config(data))


class Gateway:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.client = TestClient(create_app(runtime))

    def route(self, server: str = "echo") -> Route:
        route = self.runtime.routes.get("demo", server)
        assert route is not None
        return route

    def token(self, user: str = "alice", server: str = "echo") -> str:
        return grant_backed_token(self.runtime, self.route(server), subject=user)

    def post(
        self, message: Any, *, user: str = "alice", server: str = "echo", headers: dict[str, str] | None = None
    ) -> Any:
        sent = {"Authorization": f"Bearer {self.token(user, server)}", "Accept": ACCEPT, **(headers or {})}
        return self.client.post(f"/demo/{server}/mcp", json=message, headers=sent)


@pytest.fixture
def gateway(upstream: ScriptedUpstream) -> Gateway:
    return Gateway(_runtime(upstream.url))


def with_session(upstream: ScriptedUpstream, session_id: str = "upstream-42") -> None:
    async def answer(request: Request, body: bytes) -> Response:
        message = json.loads(body) if body else {}
        if request.method == "DELETE":
            return Response(status_code=200)
        if "id" not in message:
            return Response(status_code=202)
        if message["method"] != "initialize" and request.headers.get("mcp-session-id") != session_id:
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32000}}, 404)
        result = {"jsonrpc": "2.0", "id": message["id"], "result": {"ok": True}}
        return JSONResponse(result, headers={"Mcp-Session-Id": session_id, "Set-Cookie": "s=1"})

    upstream.answer = answer


# --- sessions -----------------------------------------------------------------------------------------------


def test_the_session_id_is_sealed_for_the_user_and_route_and_unsealed_upstream(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # Given an upstream with sessions
    with_session(upstream)

    # When alice initializes, then calls a tool with the session id she was given
    first = gateway.post(initialize())
    session_id = first.headers["mcp-session-id"]
    second = gateway.post(TOOLS_CALL, headers={"Mcp-Session-Id": session_id})

    # Then she never sees the upstream's id, which is what the upstream receives
    assert first.status_code == 200 and second.status_code == 200
    assert "upstream-42" not in session_id
    assert all(0x21 <= ord(char) <= 0x7E for char in session_id)  # MCP: visible ASCII only
    assert upstream.last.headers["mcp-session-id"] == "upstream-42"
    assert "set-cookie" not in first.headers


@pytest.mark.parametrize("who", ["another user", "another route", "tampered", "foreign"])
def test_a_session_id_that_is_not_yours_is_unknown(gateway: Gateway, upstream: ScriptedUpstream, who: str) -> None:
    # Given alice's session id
    with_session(upstream)
    session_id = gateway.post(initialize()).headers["mcp-session-id"]
    calls = len(upstream.seen)

    # When someone presents it (or a variant of it) elsewhere
    user, server = (
        ("bob", "echo") if who == "another user" else ("alice", "other" if who == "another route" else "echo")
    )
    if who == "tampered":
        session_id = session_id[:-2] + ("AA" if not session_id.endswith("AA") else "BB")
    if who == "foreign":
        session_id = "upstream-42"
    response = gateway.post(TOOLS_CALL, user=user, server=server, headers={"Mcp-Session-Id": session_id})

    # Then the gateway answers 404 (MCP: a session id the server does not know) and the upstream sees nothing
    assert response.status_code == 404
    assert response.json()["id"] == 7
    assert len(upstream.seen) == calls


def test_a_stateless_upstream_gives_the_client_no_session_id(gateway: Gateway) -> None:
    response = gateway.post(initialize())
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers


def test_delete_ends_the_upstream_session(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    with_session(upstream)
    session_id = gateway.post(initialize()).headers["mcp-session-id"]
    response = gateway.client.delete(
        MCP, headers={"Authorization": f"Bearer {gateway.token()}", "Mcp-Session-Id": session_id}
    )
    assert response.status_code == 200
    assert upstream.last.method == "DELETE"
    assert upstream.last.headers["mcp-session-id"] == "upstream-42"


# --- headers --------------------------------------------------------------------------------------------------


def test_transport_headers_cross_and_credentials_do_not(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    # Given an upstream that tries to set a cookie and an auth challenge on a success
    async def answer(request: Request, body: bytes) -> Response:
        return JSONResponse(
            {"jsonrpc": "2.0", "id": 7, "result": {}},
            headers={"Set-Cookie": "u=1", "WWW-Authenticate": "Bearer", "MCP-Protocol-Version": "2026-07-28"},
        )

    upstream.answer = answer
    # When a 2026-07-28 client calls a tool with the routing headers
    response = gateway.post(
        TOOLS_CALL,
        headers={
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/call",
            "Mcp-Name": "echo",
            "Mcp-Param-Region": "eu-west-1",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "Cookie": "gw=secret",
            "X-Forwarded-For": "10.0.0.1",
        },
    )

    # Then the transport's headers reach the upstream, and no credential crosses either way
    seen = upstream.last.headers
    assert seen["mcp-method"] == "tools/call" and seen["mcp-name"] == "echo"
    assert seen["mcp-param-region"] == "eu-west-1" and seen["mcp-protocol-version"] == "2026-07-28"
    assert seen["traceparent"].startswith("00-")
    assert "authorization" not in seen and "cookie" not in seen and "x-forwarded-for" not in seen
    assert response.headers["mcp-protocol-version"] == "2026-07-28"
    assert "set-cookie" not in response.headers and "www-authenticate" not in response.headers


def test_an_allowed_browser_origin_gets_cors_on_the_proxied_answer(gateway: Gateway) -> None:
    response = gateway.post(TOOLS_CALL, headers={"Origin": "http://localhost:6274"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "Mcp-Session-Id" in response.headers["access-control-expose-headers"]


# --- SSE ----------------------------------------------------------------------------------------------------------


def sse(*events: str) -> Response:
    return Response("".join(events), media_type="text/event-stream")


def test_an_sse_answer_is_relayed_as_received(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    stream = (
        "id: 1\nretry: 10\ndata: \n\n"
        'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}\n\n'
        'data: {"jsonrpc":"2.0","id":7,"result":{"content":[]}}\n\n'
    )

    async def answer(request: Request, body: bytes) -> Response:
        return sse(stream)

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == stream


def test_an_sse_stream_closed_early_is_resumed_upstream_until_the_answer(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # Given an upstream that polls (MCP 2025-11-25 SSE polling): it primes the stream with an id and a retry, closes
    # it, and on each GET with Last-Event-ID sends what followed, the answer on the second resumption
    async def answer(request: Request, body: bytes) -> Response:
        if request.method == "POST":
            return sse("id: e1\nretry: 5\ndata: \n\n")
        if request.headers.get("last-event-id") == "e1":
            return sse('id: e2\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n')
        assert request.headers.get("last-event-id") == "e2"
        return sse('id: e3\ndata: {"jsonrpc":"2.0","id":7,"result":{"done":true}}\n\n')

    upstream.answer = answer
    with_key = {"MCP-Protocol-Version": "2025-11-25"}

    # When the client calls a tool
    response = gateway.post(TOOLS_CALL, headers=with_key)

    # Then it gets the whole exchange in one SSE body, and the upstream saw the POST and two resuming GETs
    assert response.status_code == 200
    assert [seen.method for seen in upstream.seen] == ["POST", "GET", "GET"]
    resumed = upstream.seen[1].headers
    assert resumed["accept"] == "text/event-stream" and resumed["mcp-protocol-version"] == "2025-11-25"
    assert "authorization" not in resumed
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ") and line[6:]]
    assert json.loads(data[-1]) == {"jsonrpc": "2.0", "id": 7, "result": {"done": True}}
    assert "id: e1" in response.text and "id: e2" in response.text


def test_a_resumed_stream_the_upstream_keeps_open_ends_once_the_request_is_answered(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # Given an upstream that polls like the mcp SDK: it closes the POST stream after a priming event, then sends the
    # answer on the resumed GET stream and keeps that stream open (a GET stream stays open for later messages)
    async def resumed_and_held_open() -> AsyncIterator[bytes]:
        yield b'id: e2\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'
        yield b'id: e3\ndata: {"jsonrpc":"2.0","id":7,"result":{"done":true}}\n\n'
        await asyncio.sleep(30)  # longer than the route's timeout (2 s)
        yield b'id: e4\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'

    async def answer(request: Request, body: bytes) -> Response:
        if request.method == "POST":
            return sse("id: e1\nretry: 5\ndata: \n\n")
        assert request.headers.get("last-event-id") == "e1"
        return StreamingResponse(resumed_and_held_open(), media_type="text/event-stream")

    upstream.answer = answer

    # When the client calls a tool
    response = gateway.post(TOOLS_CALL)

    # Then it gets the whole exchange as soon as the answer arrived, not the route's 504
    assert response.status_code == 200
    assert [seen.method for seen in upstream.seen] == ["POST", "GET"]
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ") and line[6:]]
    assert json.loads(data[-1]) == {"jsonrpc": "2.0", "id": 7, "result": {"done": True}}
    assert "id: e1" in response.text and "id: e2" in response.text and "e4" not in response.text


def test_an_sse_stream_closed_without_an_event_id_is_a_502(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    async def answer(request: Request, body: bytes) -> Response:
        return sse('data: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n')

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 502
    assert "closed its event stream before answering" in response.json()["error"]["message"]


def test_a_refused_resumption_is_a_502(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    async def answer(request: Request, body: bytes) -> Response:
        if request.method == "POST":
            return sse("id: e1\nretry: 1\ndata: \n\n")
        return Response(status_code=405)

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 502
    assert "refused to resume" in response.json()["error"]["message"]


def test_resuming_is_bounded_by_the_route_timeout(upstream: ScriptedUpstream) -> None:
    # Given an upstream that keeps the client polling forever
    async def answer(request: Request, body: bytes) -> Response:
        return sse("id: e\nretry: 200\ndata: \n\n")

    upstream.answer = answer
    gateway = Gateway(_runtime(upstream.url, timeout=1))
    response = gateway.post(TOOLS_CALL)
    # Then the client gets 504 after the route's timeout, not a hang
    assert response.status_code == 504
    assert "did not answer within 1 s" in response.json()["error"]["message"]


# --- failures ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected_status", "cause"),
    [
        (200, "text/html", "<html>login</html>", 502, "non-MCP content (content type text/html)"),
        (200, "", "", 502, "non-MCP content (content type none)"),
        (302, "text/plain", "", 502, "redirect (HTTP 302)"),
        (404, "text/html", "not here", 502, "answered HTTP 404"),
        (404, "", "", 502, "answered HTTP 404"),
        (404, "application/json", '{"detail":"Not Found"}', 502, "answered HTTP 404"),
        (503, "application/json", "{}", 502, "answered HTTP 503"),
        (400, "text/plain", "Bad Request", 400, "answered HTTP 400"),
    ],
)
def test_an_upstream_answer_the_client_cannot_use_is_an_explicit_error(
    gateway: Gateway,
    upstream: ScriptedUpstream,
    status: int,
    content_type: str,
    body: str,
    expected_status: int,
    cause: str,
) -> None:
    async def answer(request: Request, sent: bytes) -> Response:
        headers = {"content-type": content_type} if content_type else {}
        if status == 302:
            headers["location"] = "https://elsewhere.example/"
        return Response(body, status_code=status, headers=headers)

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == expected_status
    error = response.json()
    assert error["id"] == 7
    assert "'demo/echo'" in error["error"]["message"] and cause in error["error"]["message"]
    assert error["error"]["data"]["upstream"] == "demo/echo"


@pytest.mark.parametrize("protocol_version", ["2026-07-28", "2025-11-25"])
def test_an_upstream_404_carrying_a_json_rpc_error_is_relayed_as_is(
    gateway: Gateway, upstream: ScriptedUpstream, protocol_version: str
) -> None:
    # Given an upstream that answers a method it does not implement (or one 2026-07-28 removed) as SEP-2575 says:
    # HTTP 404 with JSON-RPC error -32601
    answer_body = '{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found: ping"}}'

    async def answer(request: Request, body: bytes) -> Response:
        return Response(answer_body, status_code=404, media_type="application/json")

    upstream.answer = answer

    # When a client without a session sends that method
    # (with the headers 2026-07-28 requires of every request: Mcp-Method mirrors the method)
    headers = {"MCP-Protocol-Version": protocol_version, "Mcp-Method": "ping"}
    response = gateway.post({**TOOLS_CALL, "method": "ping"}, headers=headers)

    # Then it gets the upstream's answer, status and body, not the gateway's "wrong upstream URL" 502
    assert response.status_code == 404
    assert response.text == answer_body
    assert response.headers["content-type"].startswith("application/json")


def test_an_answer_beyond_the_lambda_response_limit_is_a_502(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    big = "x" * (6 * 1024 * 1024)

    async def answer(request: Request, body: bytes) -> Response:
        return JSONResponse({"jsonrpc": "2.0", "id": 7, "result": {"text": big}})

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 502
    assert "Lambda response limit" in response.json()["error"]["message"]


def test_a_json_answer_just_under_the_limit_passes_but_escaping_counts(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # 3 MB of quotes is 6 MB once embedded in the Lambda result as a JSON string
    quotes = '\\"' * (1536 * 1024)

    async def answer(request: Request, body: bytes) -> Response:
        text = '{"jsonrpc":"2.0","id":7,"result":{"text":"' + quotes + '"}}'
        return Response(text, media_type="application/json")

    upstream.answer = answer
    assert gateway.post(TOOLS_CALL).status_code == 502

    async def small(request: Request, body: bytes) -> Response:
        return Response(
            '{"jsonrpc":"2.0","id":7,"result":{"text":"' + "y" * (2 * 1024 * 1024) + '"}}',
            media_type="application/json",
        )

    upstream.answer = small
    assert gateway.post(TOOLS_CALL).status_code == 200


def test_notifications_and_responses_get_202(gateway: Gateway) -> None:
    response = gateway.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert response.status_code == 202
    response = gateway.post({"jsonrpc": "2.0", "id": 3, "result": {}})
    assert response.status_code == 202


# --- grants -------------------------------------------------------------------------------------------------------


def test_a_revoked_grant_gets_invalid_token(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    token = gateway.token()
    claims = gateway.runtime.access_tokens.verify(token, route=gateway.route())
    gateway.runtime.grants.revoke_grant(claims.grant_id, 0, "test")
    response = gateway.client.post(MCP, json=TOOLS_CALL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert not upstream.seen


def test_a_token_without_a_stored_grant_gets_invalid_token(gateway: Gateway) -> None:
    token = gateway.runtime.access_tokens.issue(
        route=gateway.route(), subject="alice", client_id="c", scopes=["mcp"], grant_id="never-stored"
    )
    response = gateway.client.post(MCP, json=TOOLS_CALL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_a_failing_grant_store_is_a_503(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    token = gateway.token()

    def broken(grant_id: str) -> None:
        raise StorageError("throttled")

    monkeypatch.setattr(gateway.runtime.grants, "get_grant", broken)
    response = gateway.client.post(MCP, json=TOOLS_CALL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json()["id"] == 7 and response.json()["error"]["code"] == -32603


# --- credentials ---------------------------------------------------------------------------------------------


def test_static_headers_reach_the_upstream_and_the_clients_token_does_not(
    gateway: Gateway, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_UPSTREAM_API_KEY", "key-1")
    response = gateway.post(TOOLS_CALL, server="keyed")
    assert response.status_code == 200
    assert upstream.last.headers["x-api-key"] == "key-1"
    assert "authorization" not in upstream.last.headers


def test_a_401_rereads_rotated_static_headers_once(
    gateway: Gateway, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cached key that the upstream no longer accepts, and a rotated one in the secret store
    monkeypatch.setenv("TEST_UPSTREAM_API_KEY", "old")
    assert gateway.post(TOOLS_CALL, server="keyed").status_code == 200

    async def answer(request: Request, body: bytes) -> Response:
        if request.headers.get("x-api-key") != "new":
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse({"jsonrpc": "2.0", "id": 7, "result": {}})

    upstream.answer = answer
    monkeypatch.setenv("TEST_UPSTREAM_API_KEY", "new")

    # When the client calls, the upstream refuses the cached key, and the gateway re-reads the secret and retries
    response = gateway.post(TOOLS_CALL, server="keyed")
    assert response.status_code == 200
    assert [seen.headers["x-api-key"] for seen in upstream.seen[-2:]] == ["old", "new"]

    # And a key the upstream still refuses after re-reading is a 502 naming the cause, never the gateway's own 401
    async def refuse(request: Request, body: bytes) -> Response:
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    upstream.answer = refuse
    response = gateway.post(TOOLS_CALL, server="keyed")
    assert response.status_code == 502
    assert "refused the gateway's credentials" in response.json()["error"]["message"]
    assert "www-authenticate" not in response.headers


def test_an_upstream_401_on_a_route_without_credentials_is_a_502(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    async def answer(request: Request, body: bytes) -> Response:
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    upstream.answer = answer
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 502
    assert "configured to send no credentials" in response.json()["error"]["message"]


def test_a_missing_static_header_secret_is_a_502_without_its_name(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_UPSTREAM_API_KEY", raising=False)
    response = gateway.post(TOOLS_CALL, server="keyed")
    assert response.status_code == 502
    assert "TEST_UPSTREAM_API_KEY" not in response.text


# --- reconnect -------------------------------------------------------------------------------------------------


class NeedsReconnect:
    def __init__(self) -> None:
        self.calls = 0

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        self.calls += 1
        if self.calls == 1:
            return {}
        raise ReconnectRequired(upstream=route.key, connect_url=CONNECT_URL, reason="refresh token revoked")

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        raise AssertionError("not called")


@pytest.fixture
def reconnect(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> NeedsReconnect:
    provider = NeedsReconnect()
    monkeypatch.setattr(gateway.runtime, "credential_provider", lambda route: provider)
    return provider


@pytest.mark.usefixtures("reconnect")
def test_a_client_that_declared_url_elicitation_gets_minus_32042(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    # Given a session whose initialize declared elicitation.url (the first call has a credential)
    with_session(upstream)
    session_id = gateway.post(initialize(url_elicitation=True)).headers["mcp-session-id"]

    # When the credential is gone on the next call
    response = gateway.post(TOOLS_CALL, headers={"Mcp-Session-Id": session_id})

    # Then the answer is MCP 2025-11-25's URL elicitation required error, as a JSON-RPC response (HTTP 200)
    assert response.status_code == 200
    error = response.json()["error"]
    assert response.json()["id"] == 7
    assert error["code"] == -32042
    (elicitation,) = error["data"]["elicitations"]
    assert elicitation["mode"] == "url" and elicitation["url"] == CONNECT_URL
    assert elicitation["elicitationId"] and "demo/echo" in elicitation["message"]


@pytest.mark.usefixtures("reconnect")
def test_a_client_without_url_elicitation_gets_the_url_in_the_message(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    with_session(upstream)
    session_id = gateway.post(initialize(url_elicitation=False)).headers["mcp-session-id"]
    response = gateway.post(TOOLS_CALL, headers={"Mcp-Session-Id": session_id})
    assert response.status_code == 200
    error = response.json()["error"]
    assert error["code"] == -32603
    assert CONNECT_URL in error["message"]


@pytest.mark.usefixtures("reconnect")
def test_a_stateless_2026_request_declares_url_elicitation_in_its_meta(gateway: Gateway) -> None:
    gateway.post(TOOLS_CALL)  # the provider's first call succeeds
    meta: dict[str, object] = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}}}
    message = {**TOOLS_CALL, "params": {**TOOLS_CALL["params"], "_meta": meta}}
    headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
    response = gateway.post(message, headers=headers)
    # MCP 2026-07-28 has no -32042: its form is an input_required result (tests/unit/proxy/test_input_required.py)
    result = response.json()["result"]
    assert result["resultType"] == "input_required"
    assert result["inputRequests"]["connect_echo"]["params"]["url"] == CONNECT_URL


@pytest.mark.usefixtures("reconnect")
def test_a_notification_that_cannot_be_relayed_gets_an_http_error(gateway: Gateway) -> None:
    gateway.post(TOOLS_CALL)
    response = gateway.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert response.status_code == 403
    assert response.json()["id"] is None and CONNECT_URL in response.json()["error"]["message"]


# --- credential failures ------------------------------------------------------------------------------------


class FailingProvider:
    """A credential provider whose ``headers`` (or, after an upstream 401, ``after_unauthorized``) raises."""

    def __init__(self, problem: Exception, *, on_renewal: bool = False) -> None:
        self.problem = problem
        self.on_renewal = on_renewal

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        if self.on_renewal:
            return {"Authorization": "Bearer expired"}
        raise self.problem

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        raise self.problem


@pytest.mark.parametrize("on_renewal", [False, True], ids=["before the call", "after an upstream 401"])
def test_an_expired_upstream_token_that_cannot_be_refreshed_now_is_a_502_naming_the_upstream(
    gateway: Gateway, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch, on_renewal: bool
) -> None:
    # Given an OAuth provider whose authorization server cannot refresh the expired token right now
    problem = UpstreamAuthUnavailable(upstream="demo/echo", reason="token endpoint unreachable (secret-ish detail)")
    monkeypatch.setattr(
        gateway.runtime, "credential_provider", lambda route: FailingProvider(problem, on_renewal=on_renewal)
    )

    async def refuse(request: Request, body: bytes) -> Response:
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})

    upstream.answer = refuse

    # When the client calls a tool
    response = gateway.post(TOOLS_CALL)

    # Then it gets a 502 JSON-RPC error naming the upstream (a transient upstream failure), not a 500
    assert response.status_code == 502
    error = response.json()
    assert error["id"] == 7 and error["error"]["code"] == -32603
    assert "'demo/echo'" in error["error"]["message"] and "could not be refreshed" in error["error"]["message"]
    assert error["error"]["data"]["upstream"] == "demo/echo"
    assert "secret-ish detail" not in response.text


def test_a_failing_credential_store_is_a_503(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = FailingProvider(StorageError("throttled"))
    monkeypatch.setattr(gateway.runtime, "credential_provider", lambda route: provider)
    response = gateway.post(TOOLS_CALL)
    assert response.status_code == 503
    assert response.json()["id"] == 7 and response.json()["error"]["code"] == -32603


def test_the_unit_event_loop_is_usable() -> None:
    # The relay uses asyncio.timeout, which needs Python 3.11's asyncio.
    assert hasattr(asyncio, "timeout")


# --- hostile input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_json_nested_too_deep_is_a_parse_error_and_never_reaches_the_upstream(
    gateway: Gateway, upstream: ScriptedUpstream, name: str
) -> None:
    # Given a valid token and a body that nests arrays or objects far deeper than any MCP message
    headers = {"Authorization": f"Bearer {gateway.token()}", "Accept": ACCEPT, "Content-Type": "application/json"}
    calls = len(upstream.seen)

    # When it is posted to the MCP endpoint
    response = gateway.client.post(MCP, content=HOSTILE_BODIES[name], headers=headers)

    # Then the gateway answers a JSON-RPC parse error itself (400), not a 500, and forwards nothing
    assert response.status_code == 400
    error = response.json()
    assert error["jsonrpc"] == "2.0" and error["id"] is None
    assert error["error"]["code"] == -32700
    assert "deeper than 64" in error["error"]["message"]
    assert len(upstream.seen) == calls

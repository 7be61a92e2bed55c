"""A user who has not connected the upstream account yet (issue 24 item 7, proxy part): ``initialize`` and
``server/discover`` succeed and say which account to connect, the tool list holds a connect tool, and the connect
request comes with the first call that needs the account. Once connected, a session begun before opens its
upstream session on the next request and goes on in it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.accounts import Account
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

MCP = "/demo/echo/mcp"
ACCEPT = "application/json, text/event-stream"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {"url": {}}, "roots": {}},
        "clientInfo": {"name": "legacy-client", "version": "3.1", "icons": [{"src": "data:image/png;base64,AAAA"}]},
    },
}


async def _session_upstream(request: Request, body: bytes) -> Response:
    """A session-era MCP server: initialize opens session "up-1"; everything else needs it."""
    message = json.loads(body) if body else {}
    if request.method == "DELETE":
        return Response(status_code=200)
    if "id" not in message:
        return Response(status_code=202)
    if message["method"] == "initialize":
        result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": {"name": "up"}}
        return JSONResponse(
            {"jsonrpc": "2.0", "id": message["id"], "result": result}, headers={"Mcp-Session-Id": "up-1"}
        )
    if request.headers.get("mcp-session-id") != "up-1":
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32001}}, 404)
    if message["method"] == "tools/list":
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [{"name": "echo"}]}})
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "echo": message["params"]}})


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        running.answer = _session_upstream
        yield running


class Legacy:
    def __init__(
        self,
        upstream: ScriptedUpstream,
        account: Account,
        auth: dict[str, Any] | None = None,
        *,
        streaming: bool = False,
    ) -> None:
        data = example_config_data()
        data["workspaces"]["demo"]["servers"]["echo"].update(upstream=upstream.url, timeout_seconds=5)
        if auth is not None:
            data["workspaces"]["demo"]["servers"]["echo"]["auth"] = auth
        self.runtime = memory_runtime(parse_config(data), response_streaming=streaming)
        self.runtime.__dict__["credential_provider"] = lambda route: account
        route = self.runtime.routes.get("demo", "echo")
        assert route is not None
        self.headers = {
            "Authorization": f"Bearer {grant_backed_token(self.runtime, route, subject='alice')}",
            "Accept": ACCEPT,
            "MCP-Protocol-Version": "2025-11-25",
        }
        self.http = TestClient(create_app(self.runtime))
        self.session = ""

    def initialize(self) -> Any:
        response = self.http.post(MCP, json=INITIALIZE, headers=self.headers)
        self.session = response.headers.get("mcp-session-id", "")
        return response

    def post(self, message: dict[str, Any]) -> Any:
        return self.http.post(MCP, json=message, headers={**self.headers, "Mcp-Session-Id": self.session})

    def request(self, method: str, params: dict[str, Any] | None = None, request_id: int = 2) -> Any:
        return self.post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}})


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")]


def test_initialize_succeeds_before_the_account_is_connected_and_says_which_to_connect(
    upstream: ScriptedUpstream,
) -> None:
    # Given alice never connected the upstream account of route demo/echo
    account = Account()
    client = Legacy(upstream, account)

    # When her client initializes
    response = client.initialize()

    # Then it succeeds (a failed initialize is a dead server to many clients), naming the account and its link
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["protocolVersion"] == "2025-11-25"
    assert result["capabilities"] == {"tools": {"listChanged": True}}
    assert account.connect_url in result["instructions"] and "connect_echo" in result["instructions"]
    assert client.session.startswith("g1.")
    # And the rest of the handshake and a ping work, and nothing reached the upstream without her credential
    assert client.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
    assert client.request("ping").json()["result"] == {}
    assert upstream.seen == []


def test_the_tool_list_names_the_account_and_the_first_call_asks_for_it(upstream: ScriptedUpstream) -> None:
    account = Account()
    client = Legacy(upstream, account)
    client.initialize()

    (tool,) = client.request("tools/list").json()["result"]["tools"]
    call = client.request("tools/call", {"name": "echo", "arguments": {}}).json()
    connect = client.request("tools/call", {"name": "connect_echo", "arguments": {}}).json()

    assert tool["name"] == "connect_echo" and "needs your own account" in tool["description"]
    assert call["error"]["code"] == -32042 and call["error"]["data"]["elicitations"][0]["url"] == account.connect_url
    assert connect["error"]["code"] == -32042
    assert upstream.seen == []


def test_once_connected_the_session_opens_its_upstream_session_and_goes_on(upstream: ScriptedUpstream) -> None:
    # Given a session begun before alice connected her account
    account = Account()
    client = Legacy(upstream, account)
    session = client.initialize().headers["mcp-session-id"]
    client.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    # When she connects it and the client goes on in the same session
    account.connect()
    listed = client.request("tools/list")
    called = client.request("tools/call", {"name": "echo", "arguments": {"text": "x"}}, request_id=3)

    # Then the gateway introduced the client upstream as it introduced itself, once, and the calls went on in the
    # upstream session, at the revision the upstream negotiated; the client kept its session id
    assert listed.json()["result"]["tools"] == [{"name": "echo"}]
    assert called.json()["result"]["echo"]["arguments"] == {"text": "x"}
    methods = [json.loads(seen.body).get("method") for seen in upstream.seen]
    assert methods == ["initialize", "notifications/initialized", "tools/list", "tools/call"]
    introduced = json.loads(upstream.seen[0].body)["params"]
    assert introduced["protocolVersion"] == "2025-11-25"
    assert introduced["capabilities"] == {"elicitation": {"url": {}}, "roots": {}}
    assert introduced["clientInfo"] == {"name": "legacy-client", "version": "3.1"}
    assert upstream.last.headers["mcp-session-id"] == "up-1"
    assert upstream.last.headers["mcp-protocol-version"] == "2025-06-18"
    assert upstream.last.headers["authorization"] == "Bearer upstream-token"
    assert "mcp-session-id" not in listed.headers and client.session == session

    # And ending the session ends the upstream one
    assert client.http.delete(MCP, headers={**client.headers, "Mcp-Session-Id": session}).status_code == 200
    assert upstream.last.method == "DELETE" and upstream.last.headers["mcp-session-id"] == "up-1"


def test_the_connect_tool_says_the_account_is_connected_and_that_the_list_changed(upstream: ScriptedUpstream) -> None:
    account = Account()
    client = Legacy(upstream, account)
    client.initialize()
    account.connect()

    response = client.request("tools/call", {"name": "connect_echo", "arguments": {}})

    # MCP 2025-11-25 §Streamable HTTP: notifications related to the request may precede its answer on its stream
    changed, answer = _events(response.text)
    assert changed == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    assert answer["id"] == 2 and "is connected" in answer["result"]["content"][0]["text"]


def test_the_streaming_deployment_opens_no_stream_for_a_session_without_its_upstream_yet(
    upstream: ScriptedUpstream,
) -> None:
    account = Account()
    client = Legacy(upstream, account, streaming=True)
    client.initialize()
    headers = {**client.headers, "Mcp-Session-Id": client.session, "Accept": "text/event-stream"}
    assert client.http.get(MCP, headers=headers).status_code == 405  # MCP: a server may offer no GET stream
    assert upstream.seen == []


def test_a_connected_user_initializes_upstream_as_before(upstream: ScriptedUpstream) -> None:
    client = Legacy(upstream, Account(connected=True))
    response = client.initialize()
    assert response.json()["result"]["serverInfo"] == {"name": "up"}
    assert [json.loads(seen.body)["method"] for seen in upstream.seen] == ["initialize"]


# --- MCP 2026-07-28 ---------------------------------------------------------------------------------------------


def _modern(client: Legacy, method: str, params: dict[str, Any]) -> Any:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}},
    }
    headers = {**client.headers, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    message = {"jsonrpc": "2.0", "id": 5, "method": method, "params": {**params, "_meta": meta}}
    return client.http.post(MCP, json=message, headers=headers)


def test_a_2026_client_discovers_lists_and_connects_before_the_account_is_connected(
    upstream: ScriptedUpstream,
) -> None:
    account = Account()
    client = Legacy(upstream, account)

    discovered = _modern(client, "server/discover", {}).json()["result"]
    listed = _modern(client, "tools/list", {}).json()["result"]
    asked = _modern(client, "tools/call", {"name": "connect_echo", "arguments": {}}).json()["result"]

    assert discovered["supportedVersions"] == ["2026-07-28"] and account.connect_url in discovered["instructions"]
    assert discovered["ttlMs"] == 0 and discovered["cacheScope"] == "private"
    assert [tool["name"] for tool in listed["tools"]] == ["connect_echo"]
    assert listed["resultType"] == "complete" and listed["ttlMs"] == 0 and listed["cacheScope"] == "private"
    assert asked["resultType"] == "input_required"

    # once connected, the connect tool's retry says so
    account.connect()
    ((key, _),) = asked["inputRequests"].items()
    retry = {"name": "connect_echo", "arguments": {}, "inputResponses": {key: {"action": "accept"}}}
    done = _modern(client, "tools/call", {**retry, "requestState": asked["requestState"]}).json()["result"]
    assert done["resultType"] == "complete" and "is connected" in done["content"][0]["text"]
    assert upstream.seen == []


# --- caching fields of lists that depend on the caller -------------------------------------------------------------


async def _public_lists(request: Request, body: bytes) -> Response:
    message = json.loads(body)
    result = {"resultType": "complete", "tools": [{"name": "echo"}], "ttlMs": 60_000, "cacheScope": "public"}
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})


@pytest.mark.parametrize("per_user", [True, False], ids=["per-user account", "no upstream auth"])
def test_a_list_that_depends_on_the_caller_is_never_shared_by_caches(
    upstream: ScriptedUpstream, per_user: bool
) -> None:
    # Given an upstream that calls its tool list public, behind a route reached with each user's own account (or not)
    upstream.answer = _public_lists
    oauth = {"type": "oauth", "authorization_server": "https://as.example.com", "client_id": "gw"}
    client = Legacy(upstream, Account(connected=True), {**oauth, "registration": "preregistered"} if per_user else None)

    listed = _modern(client, "tools/list", {}).json()["result"]

    # Then a 2026-07-28 client is told to keep it private to its own authorization (MCP 2026-07-28 §Caching), with
    # the upstream's lifetime; a list that is the same for everyone keeps the upstream's scope
    assert listed["cacheScope"] == ("private" if per_user else "public") and listed["ttlMs"] == 60_000
    assert listed["tools"] == [{"name": "echo"}]

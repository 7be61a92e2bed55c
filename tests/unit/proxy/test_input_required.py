"""MCP 2026-07-28 multi round-trip requests on a plain route (issue 24 item 2): a request whose user must connect
the upstream account first is answered with an ``InputRequiredResult`` (a URL-mode elicitation and the gateway's
sealed ``requestState``), and the client's retry completes the call once the account is connected. The state is
bound to the route, the user and the request, lives 30 minutes, and is never authorization; an upstream's own
``input_required`` round trips pass through unchanged, also across one of the gateway's."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.accounts import Account
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

ACCEPT = "application/json, text/event-stream"
URL_ELICITATION: dict[str, Any] = {"elicitation": {"url": {}}}


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


class Modern:
    """A 2026-07-28 client of route demo/echo (and demo/other), whose user's account is ``account``."""

    def __init__(
        self, upstream: ScriptedUpstream, account: Account, *, now: list[float] | None = None, streaming: bool = False
    ) -> None:
        data = example_config_data()
        servers = data["workspaces"]["demo"]["servers"]
        servers["echo"].update(upstream=upstream.url, timeout_seconds=5)
        servers["other"] = {"upstream": upstream.url, "timeout_seconds": 5}
        clock: Callable[[], float] = (lambda: now[0]) if now is not None else time.time
        self.runtime: Runtime = memory_runtime(parse_config(data), clock=clock, response_streaming=streaming)
        self.runtime.__dict__["credential_provider"] = lambda route: account
        self.http = TestClient(create_app(self.runtime))
        self.ids = 0

    def post(
        self,
        method: str,
        params: dict[str, Any],
        *,
        capabilities: dict[str, Any] | None = None,
        user: str = "alice",
        server: str = "echo",
    ) -> Any:
        self.ids += 1
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": URL_ELICITATION if capabilities is None else capabilities,
        }
        route = self.runtime.routes.get("demo", server)
        assert route is not None
        headers = {
            "Authorization": f"Bearer {grant_backed_token(self.runtime, route, subject=user)}",
            "Accept": ACCEPT,
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": method,
        }
        name = params.get("name", params.get("uri"))
        if isinstance(name, str):
            headers["Mcp-Name"] = name
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": {**params, "_meta": meta}}
        return self.http.post(f"/demo/{server}/mcp", json=message, headers=headers)


def _asked(response: Any) -> tuple[str, dict[str, Any], str]:
    """(the input request's key, the input request, the requestState) of an InputRequiredResult."""
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["resultType"] == "input_required"
    ((key, asked),) = result["inputRequests"].items()
    return key, asked, result["requestState"]


def _retry(params: dict[str, Any], key: str, state: str, action: str = "accept") -> dict[str, Any]:
    return {**params, "inputResponses": {key: {"action": action}}, "requestState": state}


CALL = {"name": "echo", "arguments": {"text": "hi"}}


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streaming"])
def test_a_call_that_needs_the_account_asks_for_it_and_the_retry_completes(
    upstream: ScriptedUpstream, streaming: bool
) -> None:
    # Given alice has not connected her upstream account, and a 2026-07-28 client that declared URL elicitation
    account = Account()
    client = Modern(upstream, account, streaming=streaming)

    # When the client calls a tool
    first = client.post("tools/call", CALL)

    # Then the answer is an InputRequiredResult with one URL-mode elicitation for the connect link, and a state
    key, asked, state = _asked(first)
    assert asked == {
        "method": "elicitation/create",
        "params": {"mode": "url", "message": asked["params"]["message"], "url": account.connect_url},
    }
    assert "demo/echo" in asked["params"]["message"]
    assert state.startswith("gs1.") and "echo" not in state and "alice" not in state  # opaque, sealed
    assert upstream.seen == []  # nothing was sent without a credential

    # When she connects the account and the client retries the same request with the input response and the state
    account.connect()
    retried = client.post("tools/call", _retry(CALL, key, state))

    # Then the call completes upstream, which got the request as the client meant it, without the gateway's state
    assert retried.status_code == 200, retried.text
    now = client.runtime.now()
    events = client.runtime.audit_log.events("demo", since=now - 60, until=now + 60)
    called = sorted(str(e.detail["outcome"]) for e in events if e.kind == "tool.called")
    assert called == ["input_required", "ok"]  # the audit trail tells the round trip from the call
    assert retried.json()["id"] == client.ids
    sent = json.loads(upstream.last.body)
    assert sent["method"] == "tools/call" and sent["params"]["name"] == "echo"
    assert "requestState" not in sent["params"] and "inputResponses" not in sent["params"]
    assert upstream.last.headers["authorization"] == "Bearer upstream-token"
    assert upstream.last.headers["mcp-name"] == "echo"


def test_a_retry_before_the_account_is_connected_asks_again(upstream: ScriptedUpstream) -> None:
    client = Modern(upstream, Account())
    key, _, state = _asked(client.post("tools/call", CALL))
    key_again, _, state_again = _asked(client.post("tools/call", _retry(CALL, key, state)))
    assert key_again == key and state_again != state
    assert upstream.seen == []


@pytest.mark.parametrize("action", ["decline", "cancel"])
def test_a_declined_connection_ends_the_request_with_an_error_naming_the_link(
    upstream: ScriptedUpstream, action: str
) -> None:
    account = Account()
    client = Modern(upstream, account)
    key, _, state = _asked(client.post("tools/call", CALL))
    answer = client.post("tools/call", _retry(CALL, key, state, action)).json()
    assert answer["error"]["code"] == -32603 and account.connect_url in answer["error"]["message"]
    assert answer["error"]["data"]["reason"] == "declined"


def test_a_client_that_did_not_declare_url_elicitation_gets_the_link_in_an_error(upstream: ScriptedUpstream) -> None:
    # MCP 2026-07-28 §MRTR: a server MUST NOT send an input request the client has not declared support for
    account = Account()
    answer = Modern(upstream, account).post("tools/call", CALL, capabilities={"elicitation": {"form": {}}}).json()
    assert "result" not in answer
    assert answer["error"]["code"] == -32603 and account.connect_url in answer["error"]["message"]


@pytest.mark.parametrize(
    ("method", "params"),
    [("prompts/get", {"name": "greet"}), ("resources/read", {"uri": "notes://today"})],
)
def test_prompts_and_resources_ask_the_same_way(
    upstream: ScriptedUpstream, method: str, params: dict[str, Any]
) -> None:
    account = Account()
    client = Modern(upstream, account)
    key, _, state = _asked(client.post(method, params))
    account.connect()
    assert client.post(method, _retry(params, key, state)).status_code == 200
    assert json.loads(upstream.last.body)["params"] == {
        **params,
        "_meta": json.loads(upstream.last.body)["params"]["_meta"],
    }


# --- the requestState is attacker-controlled input ---------------------------------------------------------------


def _tampered(state: str) -> str:
    middle = len(state) // 2
    return state[:middle] + ("A" if state[middle] != "A" else "B") + state[middle + 1 :]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tampered", "was altered"),
        ("another user", "issued to another user"),
        ("another route", "for another route"),
        ("another request", "issued for another request"),
        ("expired", "has expired"),
    ],
)
def test_a_request_state_that_fails_its_checks_is_refused_saying_why(
    upstream: ScriptedUpstream, change: str, reason: str
) -> None:
    # Given a state the gateway issued to alice for a call of echo on demo/echo, and her account connected since
    now = [time.time()]  # tokens are issued at the real time; the test moves this clock from there
    account = Account()
    client = Modern(upstream, account, now=now)
    key, _, state = _asked(client.post("tools/call", CALL))
    account.connect()
    params, user, server = _retry(CALL, key, state), "alice", "echo"
    if change == "tampered":
        params["requestState"] = _tampered(state)
    elif change == "another user":
        user = "bob"
    elif change == "another route":
        server = "other"
    elif change == "another request":
        params["name"] = "other_tool"
    else:
        now[0] += 31 * 60

    # When it comes back changed
    response = client.post("tools/call", params, user=user, server=server)

    # Then it is a JSON-RPC error that says why (HTTP 400 in this revision), never a 5xx, and nothing went upstream
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == -32602 and reason in error["message"] and "requestState" in error["message"]
    assert upstream.seen == []


def test_a_state_is_not_authorization_the_retry_uses_the_account_as_it_is_now(upstream: ScriptedUpstream) -> None:
    # Given a valid state, but the account is still not connected: the state opens nothing by itself
    client = Modern(upstream, Account())
    key, _, state = _asked(client.post("tools/call", CALL))
    _asked(client.post("tools/call", _retry(CALL, key, state)))
    assert upstream.seen == []


# --- an upstream's own round trips ---------------------------------------------------------------------------------


async def _asks_for_a_color(request: Request, body: bytes) -> Response:
    """An upstream that answers a call with its own InputRequiredResult until the retry carries its answer."""
    message = json.loads(body)
    params = message["params"]
    if params.get("requestState") == "upstream-state-1" and "color" in params.get("inputResponses", {}):
        color = params["inputResponses"]["color"]["content"]["color"]
        done: dict[str, Any] = {"resultType": "complete", "content": [{"type": "text", "text": f"painted {color}"}]}
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": done})
    asked = {"method": "elicitation/create", "params": {"mode": "form", "message": "Color?", "requestedSchema": {}}}
    result = {"resultType": "input_required", "inputRequests": {"color": asked}, "requestState": "upstream-state-1"}
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})


@pytest.mark.parametrize("streaming", [False, True], ids=["buffered", "streaming"])
def test_an_upstreams_own_input_required_passes_through_unchanged(upstream: ScriptedUpstream, streaming: bool) -> None:
    upstream.answer = _asks_for_a_color
    account = Account(connected=True)
    client = Modern(upstream, account, streaming=streaming)
    first = client.post("tools/call", CALL).json()["result"]
    assert first["requestState"] == "upstream-state-1" and "color" in first["inputRequests"]

    params = {**CALL, "inputResponses": {"color": {"action": "accept", "content": {"color": "red"}}}}
    done = client.post("tools/call", {**params, "requestState": "upstream-state-1"}).json()["result"]
    assert done["content"][0]["text"] == "painted red"


def test_an_upstreams_round_trip_survives_one_of_the_gateways(upstream: ScriptedUpstream) -> None:
    # Given an upstream round trip in progress (the client answers the upstream's question)...
    upstream.answer = _asks_for_a_color
    account = Account(connected=True)
    client = Modern(upstream, account)
    answered = {**CALL, "inputResponses": {"color": {"action": "accept", "content": {"color": "blue"}}}}
    answered["requestState"] = "upstream-state-1"
    # ...when the account must be connected again before the retry reaches the upstream
    account.connected = False
    key, _, state = _asked(client.post("tools/call", answered))
    account.connect()

    # When the client completes the gateway's round trip
    done = client.post("tools/call", {**CALL, "inputResponses": {key: {"action": "accept"}}, "requestState": state})

    # Then the upstream got its own state and its answer back, and completed the call
    assert done.json()["result"]["content"][0]["text"] == "painted blue"
    sent = json.loads(upstream.last.body)["params"]
    assert sent["requestState"] == "upstream-state-1"
    assert sent["inputResponses"] == {"color": {"action": "accept", "content": {"color": "blue"}}}


def test_a_2025_11_25_session_keeps_the_url_elicitation_error(upstream: ScriptedUpstream) -> None:
    # The session era has no input_required: -32042 stays its form (MCP 2025-11-25 §Elicitation)
    account = Account()
    client = Modern(upstream, account)
    route = client.runtime.routes.get("demo", "echo")
    assert route is not None
    headers = {
        "Authorization": f"Bearer {grant_backed_token(client.runtime, route, subject='alice')}",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": "2025-11-25",
    }
    initialize: dict[str, Any] = {
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": URL_ELICITATION, "clientInfo": {"name": "t"}},
    }  # fmt: skip
    session = client.http.post("/demo/echo/mcp", json=initialize, headers=headers).headers["mcp-session-id"]
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": CALL}
    answer = client.http.post("/demo/echo/mcp", json=call, headers={**headers, "Mcp-Session-Id": session}).json()
    assert answer["error"]["code"] == -32042
    assert answer["error"]["data"]["elicitations"][0]["url"] == account.connect_url

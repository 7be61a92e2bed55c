"""Recording never fails the request it describes (issue "Fail closed", item 5): a value an attacker chose that
looks like one of the gateway's own credentials (a JWT's ``eyJ`` header, an ``mcpgw_`` key) is redacted in the
audit event, and the request is answered as it would be without it. Each case goes through the real endpoint whose
side effect happened before the audit write: a registration, a revocation, a tool call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.audit import REDACTED
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.storage.records import AuditEvent
from gateway.web.proxy import app as proxy_app
from gateway.web.register import app as register_app
from gateway.web.token import app as token_app
from infra.placeholders import create_grant, ensure_local_client, grant_backed_token
from tests.support.recording_upstream import recording_upstream
from tests.support.runtime import example_config_data, memory_runtime

JWT_SHAPED = "eyJhbGciOiJSUzI1NiJ9.e30.sig"
KEY_SHAPED = "mcpgw_0123456789abcdef_x"


def events(runtime: Runtime, kind: str) -> list[AuditEvent]:
    return [event for event in runtime.audit_log.events("demo", since=0, until=2**40) if event.kind == kind]


@pytest.mark.parametrize("client_name", ["eyJhbGciOi", KEY_SHAPED])
def test_a_registration_named_like_a_token_is_stored_answered_201_and_recorded(client_name: str) -> None:
    # Given the register function
    runtime = memory_runtime()
    client = TestClient(register_app.create_app(runtime), raise_server_exceptions=False)

    # When a client registers with a name shaped like a token
    response = client.post(
        "/demo/echo/register", json={"redirect_uris": ["http://127.0.0.1:4000/cb"], "client_name": client_name}
    )

    # Then it is registered (201, stored under that name) and the event is recorded with the name redacted
    assert response.status_code == 201, response.text
    client_id = response.json()["client_id"]
    stored = runtime.clients.get(client_id, runtime.now())
    assert stored is not None and stored.client_name == client_name
    [event] = events(runtime, "client.registered")
    assert event.client_id == client_id and event.detail["client_name"] == REDACTED


def test_a_revocation_with_a_token_shaped_hint_revokes_answers_200_and_is_recorded() -> None:
    # Given a client's access token
    runtime = memory_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    client_id = ensure_local_client(runtime, route)
    token = grant_backed_token(runtime, route, subject="alice", client_id=client_id)
    [grant] = runtime.grants.grants_of_user("demo", "alice")
    client = TestClient(token_app.create_app(runtime), raise_server_exceptions=False)

    # When the client revokes it with a token_type_hint shaped like a JWT
    response = client.post(
        "/demo/echo/revoke", data={"token": token, "token_type_hint": JWT_SHAPED, "client_id": client_id}
    )

    # Then 200 (RFC 7009 §2.2), the grant is revoked, and the event says so with the hint redacted
    assert response.status_code == 200, response.text
    revoked = runtime.grants.get_grant(grant.grant_id)
    assert revoked is not None and revoked.status == "revoked"
    [event] = events(runtime, "token.revoked")
    assert event.grant_id == grant.grant_id and event.detail["hint"] == REDACTED


@pytest.fixture
def upstream_url() -> Iterator[str]:
    with recording_upstream() as (url, _):
        yield url


@pytest.mark.parametrize("tool", [JWT_SHAPED, KEY_SHAPED])
def test_a_tool_call_named_like_a_token_is_answered_and_recorded(upstream_url: str, tool: str) -> None:
    # Given a route in front of an upstream that answers every call
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    runtime = memory_runtime(parse_config(data))
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = create_grant(runtime, route, subject="alice", client_id="c")
    token = runtime.access_tokens.issue(route=route, subject="alice", client_id="c", scopes=["mcp"], grant_id=grant_id)
    client = TestClient(proxy_app.create_app(runtime), raise_server_exceptions=False)

    # When the client calls a tool whose name is shaped like a token
    response = client.post(
        "/demo/echo/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
    )

    # Then the upstream's answer reaches the client, and the call is in the audit trail with the name redacted
    assert response.status_code == 200, response.text
    assert response.json()["id"] == 1
    [event] = events(runtime, "tool.called")
    assert event.grant_id == grant_id and event.detail["tool"] == REDACTED and event.detail["outcome"] == "ok"

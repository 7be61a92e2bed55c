"""The MCP endpoint: the 401 challenge, CORS, 404s, and the pass-through to the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.placeholders import create_grant
from tests.support.recording_upstream import Recorded, free_port, recording_upstream
from tests.support.runtime import example_config_data, memory_runtime

PRM = "https://gw.example.com/.well-known/oauth-protected-resource/demo/echo/mcp"
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}


@pytest.fixture
def upstream() -> Iterator[tuple[str, Recorded]]:
    with recording_upstream() as running:
        yield running


def _runtime(upstream_url: str) -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    data["workspaces"]["demo"]["servers"]["echo"]["timeout_seconds"] = 1
    return memory_runtime(parse_config(data))


@pytest.fixture
def gateway(upstream: tuple[str, Recorded]) -> tuple[TestClient, Runtime]:
    runtime = _runtime(upstream[0])
    return TestClient(create_app(runtime)), runtime


def _token(runtime: Runtime, **overrides: object) -> str:
    """A token whose grant exists and is active (the proxy checks it)."""
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    subject = str(overrides.get("subject", "alice"))
    grant_id = create_grant(runtime, route, subject=subject, client_id="c")
    args: dict[str, object] = {
        "route": route,
        "subject": subject,
        "client_id": "c",
        "scopes": ["mcp"],
        "grant_id": grant_id,
    }
    args.update(overrides)
    return runtime.access_tokens.issue(**args)  # type: ignore[arg-type]


def test_a_request_without_a_token_gets_the_discovery_challenge(gateway: tuple[TestClient, Runtime]) -> None:
    client, _ = gateway
    response = client.post("/demo/echo/mcp", json=INITIALIZE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{PRM}", scope="mcp"'


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [("Bearer garbage", "malformed"), ("Bearer a.b.c", "malformed")],
)
def test_an_invalid_token_gets_invalid_token(
    gateway: tuple[TestClient, Runtime], authorization: str, reason: str
) -> None:
    client, _ = gateway
    response = client.post("/demo/echo/mcp", json=INITIALIZE, headers={"Authorization": authorization})
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{PRM}", scope="mcp", error="invalid_token"')
    assert reason in challenge


def test_an_expired_token_gets_invalid_token(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    token = _token(runtime, lifetime_seconds=-120)
    response = client.post("/demo/echo/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error_description="the access token has expired"' in response.headers["www-authenticate"]


def test_a_token_without_the_route_scope_gets_insufficient_scope(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    token = _token(runtime, scopes=["offline_access"])
    response = client.post("/demo/echo/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_unknown_workspace_and_server_get_clear_404s(gateway: tuple[TestClient, Runtime]) -> None:
    client, _ = gateway
    assert client.post("/nope/echo/mcp").json()["error_description"] == "no workspace 'nope' on this gateway"
    assert client.post("/demo/nope/mcp").json()["error_description"] == "no MCP server 'nope' in workspace 'demo'"


def test_preflight_needs_no_token_and_allows_listed_origins(gateway: tuple[TestClient, Runtime]) -> None:
    client, _ = gateway
    response = client.options(
        "/demo/echo/mcp",
        headers={"Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:6274"
    assert "Mcp-Session-Id" in response.headers["access-control-expose-headers"]
    assert "WWW-Authenticate" in response.headers["access-control-expose-headers"]
    # A browser-based client may send what the transport and its token need: its DPoP proof (RFC 9449 §4.1) too
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "dpop", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name"} <= allowed
    # and the Mcp-Param-* headers of MCP 2026-07-28 it asks for (their names vary by tool), nothing else it asks for
    asked = "Content-Type, Mcp-Param-Region, mcp-param-db_name, X-Evil, Mcp-Param-Bad Name"
    response = client.options(
        "/demo/echo/mcp",
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"mcp-param-region", "mcp-param-db_name"} <= allowed
    assert "x-evil" not in allowed and not any(" " in name for name in allowed)


def test_a_disallowed_browser_origin_is_refused(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    response = client.post(
        "/demo/echo/mcp",
        json=INITIALIZE,
        headers={"Origin": "https://evil.example", "Authorization": f"Bearer {_token(runtime)}"},
    )
    assert response.status_code == 403


def test_a_valid_token_is_forwarded_without_the_clients_credentials(
    gateway: tuple[TestClient, Runtime], upstream: tuple[str, Recorded]
) -> None:
    client, runtime = gateway
    _, recorded = upstream
    response = client.post(
        "/demo/echo/mcp",
        json=INITIALIZE,
        headers={
            "Authorization": f"Bearer {_token(runtime)}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-06-18",
            "Cookie": "session=secret",
            "Connection": "keep-alive, X-Private",
            "X-Private": "do-not-forward",
        },
    )
    assert response.status_code == 200
    assert response.json()["result"]["echo"] == {"protocolVersion": "2025-06-18"}
    # the upstream's session id is sealed for this user and route, never shown as is
    assert response.headers["mcp-session-id"].startswith("g1.")
    assert "upstream-session" not in response.headers["mcp-session-id"]
    assert "set-cookie" not in response.headers
    forwarded = recorded.requests[-1]["headers"]
    assert "authorization" not in forwarded and "cookie" not in forwarded and "x-private" not in forwarded
    assert forwarded["mcp-protocol-version"] == "2025-06-18"
    assert forwarded["accept"] == "application/json, text/event-stream"


def test_notifications_are_relayed_as_202(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    response = client.post(
        "/demo/echo/mcp",
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Authorization": f"Bearer {_token(runtime)}"},
    )
    assert response.status_code == 202


def test_get_is_answered_405_in_the_buffered_deployment(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    response = client.get("/demo/echo/mcp", headers={"Authorization": f"Bearer {_token(runtime)}"})
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_an_unreachable_upstream_is_a_jsonrpc_error_naming_it() -> None:
    runtime = _runtime(f"http://127.0.0.1:{free_port()}/mcp")
    response = TestClient(create_app(runtime)).post(
        "/demo/echo/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {_token(runtime)}"}
    )
    assert response.status_code == 502
    body = response.json()
    assert body["id"] == 1
    assert "'demo/echo'" in body["error"]["message"] and "unreachable" in body["error"]["message"]


def test_a_failing_or_slow_upstream_is_explicit(
    gateway: tuple[TestClient, Runtime], upstream: tuple[str, Recorded]
) -> None:
    client, runtime = gateway
    _, recorded = upstream
    headers = {"Authorization": f"Bearer {_token(runtime)}"}
    recorded.status = 500
    assert client.post("/demo/echo/mcp", json=INITIALIZE, headers=headers).status_code == 502
    recorded.status, recorded.delay_seconds = 200, 1.5
    response = client.post("/demo/echo/mcp", json=INITIALIZE, headers=headers)
    assert response.status_code == 504
    assert "did not answer within 1 s" in response.json()["error"]["message"]

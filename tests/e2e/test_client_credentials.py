"""``client_credentials`` end to end: the official Python SDK's client-credentials provider, given the demo CI
client of the session's configuration (tests/conftest.py, bound to the service identity ``service:ci``), discovers the
route's authorization server, gets a token with no browser and lists and calls tools; the token cannot be refreshed,
is bound to its route, and ``mcp-gateway admin revoke-client`` makes its next call 401."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from gateway.admin import main
from infra.devserver import DevServer
from tests.support.mcp_client import MemoryStorage, run_async

pytestmark = [pytest.mark.e2e]

CLIENT_ID, CLIENT_SECRET = "demo-ci", "demo-ci-secret"  # tests/conftest.py


async def list_and_call(url: str, storage: MemoryStorage) -> tuple[list[str], list[str]]:
    provider = ClientCredentialsOAuthProvider(
        server_url=url,
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=url.removesuffix("/mcp"),  # the route's own authorization server
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("echo", {"text": "from a service"})
    assert not result.is_error, result
    return [tool.name for tool in tools.tools], [item.text for item in result.content if isinstance(item, TextContent)]


def token_request(dev_server: DevServer, **form: str) -> httpx.Response:
    return httpx.post(f"{dev_server.url}/demo/echo/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=30)


def test_the_sdk_gets_a_client_credentials_token_and_calls_tools_without_a_browser(
    dev_server: DevServer, gateway_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the route's metadata, which advertises client_credentials for this route
    url = f"{dev_server.url}/demo/echo/mcp"
    metadata = httpx.get(f"{dev_server.url}/.well-known/oauth-authorization-server/demo/echo", timeout=30).json()
    assert "client_credentials" in metadata["grant_types_supported"]

    # When the SDK's client-credentials provider connects
    storage = MemoryStorage()
    tools, echoed = run_async(lambda: list_and_call(url, storage))

    # Then it lists and calls tools, with a token and no refresh token
    assert "echo" in tools and any("from a service" in text for text in echoed)
    assert storage.tokens is not None and storage.tokens.refresh_token is None

    # And the audit trail shows the issuance and the call as the service identity (the call's event is written after
    # its answer, as on Lambda: read once the containers have settled)
    assert dev_server.settle()
    status = main(["admin", "--json", "audit", "--workspace", "demo", "--client", CLIENT_ID, "--since", "1h"],
                  environ=gateway_env)  # fmt: skip
    events: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    assert status == 0
    issued = [
        e for e in events if e["kind"] == "token.issued" and e["detail"].get("grant_type") == "client_credentials"
    ]
    assert issued and issued[0]["user_id"] == "service:ci"
    assert any(e["kind"] == "tool.called" and e["user_id"] == "service:ci" for e in events)


def test_a_client_credentials_token_cannot_be_refreshed_and_is_bound_to_its_route(dev_server: DevServer) -> None:
    # Given a token for route demo/echo
    response = token_request(dev_server, grant_type="client_credentials", resource=f"{dev_server.url}/demo/echo/mcp")
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and body["token_type"] == "Bearer"

    # When the client tries to refresh it (with the only token it has)
    refresh = token_request(dev_server, grant_type="refresh_token", refresh_token=body["access_token"])

    # Then it is refused
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"

    # And a token for another route is refused at this route's token endpoint, and this token at another route
    other = token_request(dev_server, grant_type="client_credentials", resource=f"{dev_server.url}/demo/toolbox/mcp")
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    at_toolbox = httpx.post(
        f"{dev_server.url}/demo/toolbox/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
        headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=30,
    )  # fmt: skip
    assert at_toolbox.status_code == 401


def test_a_client_without_a_service_identity_may_not_use_client_credentials(dev_server: DevServer) -> None:
    # Given a dynamically registered confidential client
    registered = httpx.post(
        f"{dev_server.url}/demo/echo/register", timeout=30,
        json={"client_name": "not a service", "redirect_uris": ["http://127.0.0.1/cb"],
              "token_endpoint_auth_method": "client_secret_basic"},
    ).json()  # fmt: skip

    # When it asks for client_credentials
    response = httpx.post(
        f"{dev_server.url}/demo/echo/token", data={"grant_type": "client_credentials"},
        auth=(registered["client_id"], registered["client_secret"]), timeout=30,
    )  # fmt: skip

    # Then it is refused
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_revoke_client_makes_the_next_call_of_its_tokens_401(
    dev_server: DevServer, gateway_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a client_credentials token that works at its route
    url = f"{dev_server.url}/demo/echo/mcp"
    token = token_request(dev_server, grant_type="client_credentials").json()["access_token"]
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    assert httpx.post(url, json=ping, headers=headers, timeout=30).status_code != 401

    # When an administrator revokes the client
    assert main(["admin", "revoke-client", CLIENT_ID], environ=gateway_env) == 0
    capsys.readouterr()

    # Then the token's next call is 401, and a new token can be had (the client stays in the configuration)
    refused = httpx.post(url, json=ping, headers=headers, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
    assert token_request(dev_server, grant_type="client_credentials").status_code == 200

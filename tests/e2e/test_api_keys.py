"""Gateway API keys end to end: a key made with ``mcp-gateway admin create-key`` against the running local stack
lets the official ``mcp`` Python SDK list and call tools with no browser, as ``Authorization: Bearer`` and in the
separate key header; a revoked key, an expired key and a key at a route it does not name get ``401`` on their next
call."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from gateway.admin import main
from gateway.runtime import Runtime
from infra.devserver import DevServer
from tests.support.mcp_client import run_async

pytestmark = [pytest.mark.e2e]

KEY_HEADER = "X-Gateway-Key"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}},
}


def admin(capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> Any:
    status = main(["admin", "--json", *argv], environ=env)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def create_key(capsys: pytest.CaptureFixture[str], env: dict[str, str], *servers: str) -> tuple[str, str]:
    server_args = [arg for server in servers for arg in ("--server", server)]
    [row] = admin(capsys, env, "create-key", "--workspace", "demo", "--user", "alice", "--name", "ci", *server_args)
    return row["key_id"], row["key"]


async def list_and_call(url: str, headers: dict[str, str]) -> tuple[list[str], list[str]]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("echo", {"text": "from CI"})
    assert not result.is_error, result
    return [tool.name for tool in tools.tools], [item.text for item in result.content if isinstance(item, TextContent)]


def status_of(url: str, headers: dict[str, str]) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", **headers}
    return httpx.post(url, json=INITIALIZE, headers=headers, timeout=30)


def test_a_key_made_by_the_admin_cli_lists_and_calls_tools_through_the_sdk_until_revoked(
    dev_server: DevServer, gateway_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a key alice's CI job got from an administrator, for route demo/echo
    key_id, key = create_key(capsys, gateway_env, "echo")
    assert key.startswith("mcpgw_")
    url = f"{dev_server.url}/demo/echo/mcp"

    # When the SDK connects with it as a bearer token, and again in the separate header (Authorization then
    # carries something else, which the gateway ignores)
    as_bearer = run_async(lambda: list_and_call(url, {"Authorization": f"Bearer {key}"}))
    in_header = run_async(lambda: list_and_call(url, {KEY_HEADER: key, "Authorization": "Bearer for-someone-else"}))

    # Then both list and call the tools, with no browser
    for tools, echoed in (as_bearer, in_header):
        assert "echo" in tools
        assert any("from CI" in text for text in echoed)

    # And the audit trail shows the calls as alice's, with the key as the client, and never the key itself (written
    # after each answer, as on Lambda: read once the containers have settled)
    assert dev_server.settle()
    events = admin(capsys, gateway_env, "audit", "--workspace", "demo", "--client", key_id, "--since", "1h")
    kinds = [event["kind"] for event in events]
    assert kinds.count("tool.called") == 2 and "key.created" in kinds
    assert {event["user_id"] for event in events} == {"alice"}
    assert key not in json.dumps(events)
    listed = admin(capsys, gateway_env, "keys", "--workspace", "demo", "--user", "alice")
    assert key_id in [row["key_id"] for row in listed] and key not in json.dumps(listed)
    assert all("secret_hash" not in row for row in listed)

    # When the administrator revokes it
    admin(capsys, gateway_env, "revoke-key", key_id)

    # Then its next call is 401 with a bearer challenge, in either place
    for headers in ({"Authorization": f"Bearer {key}"}, {KEY_HEADER: key}):
        refused = status_of(url, headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_token"
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_an_expired_key_and_a_key_at_another_route_get_401(
    dev_server: DevServer, gateway_env: dict[str, str], gateway_runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a key for route demo/echo that works there
    key_id, key = create_key(capsys, gateway_env, "echo")
    echo = f"{dev_server.url}/demo/echo/mcp"
    assert status_of(echo, {KEY_HEADER: key}).status_code == 200

    # When it is used at route demo/toolbox, which it does not name
    elsewhere = status_of(f"{dev_server.url}/demo/toolbox/mcp", {"Authorization": f"Bearer {key}"})

    # Then it is refused like an invalid token
    assert elsewhere.status_code == 401
    assert "not valid for this MCP server" in elsewhere.json()["error_description"]
    assert "resource_metadata=" in elsewhere.headers["www-authenticate"]

    # When its expiry passes (the item's expiry moved into the past, as time would)
    gateway_runtime.dynamodb.update_item(
        TableName=gateway_env["GATEWAY_GRANTS_TABLE"],
        Key={"pk": {"S": f"APIKEY#{key_id}"}, "sk": {"S": "APIKEY"}},
        UpdateExpression="SET expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(gateway_runtime.now() - 1)}},
    )

    # Then its next call is 401
    expired = status_of(echo, {KEY_HEADER: key})
    assert expired.status_code == 401
    assert "expired" in expired.json()["error_description"]


def test_a_malformed_or_unknown_key_gets_401(dev_server: DevServer) -> None:
    url = f"{dev_server.url}/demo/echo/mcp"
    for key in ("mcpgw_short", "mcpgw_" + "A" * 16 + "_" + "b" * 43):
        response = status_of(url, {KEY_HEADER: key})
        assert response.status_code == 401, key
        assert response.json()["error"] == "invalid_token"

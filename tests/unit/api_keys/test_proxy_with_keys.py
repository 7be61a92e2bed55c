"""The MCP endpoint with gateway API keys (in-memory stores, a recording upstream): what the upstream sees, a tool
allow-list, the per-caller rate limit, and the refusals."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api_keys.issuing import KeyRequest, create_key
from gateway.api_keys.key_format import new_key
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.storage.records import ApiKey
from gateway.web.proxy.app import create_app
from tests.support.recording_upstream import Recorded, recording_upstream
from tests.support.runtime import example_config_data, memory_runtime

NOW = 1_800_000_000
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}


def call(tool: str, request_id: int = 7) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


@pytest.fixture
def upstream() -> Iterator[tuple[str, Recorded]]:
    with recording_upstream() as running:
        yield running


def _gateway(upstream_url: str, **settings: Any) -> tuple[TestClient, Runtime]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    runtime = memory_runtime(parse_config(data), clock=lambda: NOW, **settings)
    return TestClient(create_app(runtime)), runtime


def _key(runtime: Runtime, **changes: object) -> str:
    request = KeyRequest(workspace="demo", user_id="alice", name="ci", servers=("echo",))
    request = dataclasses.replace(request, **changes)  # type: ignore[arg-type]
    _, value = create_key(runtime.api_keys, runtime.audit, runtime.config, request, NOW)
    return value


def test_the_upstream_never_sees_the_key_in_either_header(upstream: tuple[str, Recorded]) -> None:
    # Given a key, sent once as a bearer token and once in the key header beside another Authorization
    client, runtime = _gateway(upstream[0])
    key = _key(runtime)

    # When both requests are relayed
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-Gateway-Key": key, "Authorization": "Basic b3RoZXI="}):
        assert client.post("/demo/echo/mcp", json=INITIALIZE, headers=headers).status_code == 200

    # Then the upstream got neither the key nor the client's Authorization
    assert len(upstream[1].requests) == 2
    for seen in upstream[1].requests:
        assert key not in json.dumps(seen["headers"])
        assert "x-gateway-key" not in seen["headers"] and "authorization" not in seen["headers"]


def test_a_tool_scoped_key_may_call_only_its_tools(upstream: tuple[str, Recorded]) -> None:
    # Given a key allowed to call only `echo`
    client, runtime = _gateway(upstream[0])
    key = _key(runtime, tools=("echo",))
    headers = {"X-Gateway-Key": key}

    # When it calls another tool, alone or in a batch
    refused = client.post("/demo/echo/mcp", json=call("delete-everything"), headers=headers)
    batch = client.post("/demo/echo/mcp", json=[call("echo", 1), call("delete-everything", 2)], headers=headers)

    # Then the gateway answers a JSON-RPC error itself and the upstream sees nothing
    assert refused.status_code == 200
    assert refused.json()["id"] == 7 and refused.json()["error"]["code"] == -32602
    assert "delete-everything" in refused.json()["error"]["message"]
    assert [item["error"]["code"] for item in batch.json()] == [-32602, -32602]
    assert upstream[1].requests == []

    # And its own tool, and any other method, go through
    assert client.post("/demo/echo/mcp", json=call("echo"), headers=headers).status_code == 200
    assert client.post("/demo/echo/mcp", json=INITIALIZE, headers=headers).status_code == 200
    assert len(upstream[1].requests) == 2


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(upstream: tuple[str, Recorded]) -> None:
    # Given a proxy limit of 2 requests a minute per caller
    client, runtime = _gateway(upstream[0], rate_limit_proxy_per_caller=2)
    key, other = _key(runtime), _key(runtime)

    # When one key sends a third request within the minute
    statuses = [client.post("/demo/echo/mcp", json=INITIALIZE, headers={"X-Gateway-Key": key}) for _ in range(3)]

    # Then it gets 429, a Retry-After until the minute ends, and a JSON-RPC error for its request
    assert [response.status_code for response in statuses] == [200, 200, 429]
    assert statuses[2].headers["retry-after"] == str(60 - NOW % 60)
    assert statuses[2].json()["id"] == 1 and statuses[2].json()["error"]["code"] == -32000
    # And another key of the same owner has its own budget
    assert client.post("/demo/echo/mcp", json=INITIALIZE, headers={"X-Gateway-Key": other}).status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"status": "revoked"}, "revoked"),
        ({"expires_at": NOW}, "expired"),
        ({"servers": ("toolbox",)}, "not valid for this MCP server"),
        ({"workspace": "acme"}, "not valid for this MCP server"),
        ({"user_groups": ()}, "may not use"),
    ],
)
def test_a_key_that_may_not_call_the_route_now_gets_401(
    upstream: tuple[str, Recorded], change: dict[str, object], reason: str
) -> None:
    # Given a key whose stored record no longer allows this call
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream[0]
    data["workspaces"]["demo"]["servers"]["echo"]["access"] = {"groups": ["engineering"]}
    runtime = memory_runtime(parse_config(data), clock=lambda: NOW)
    client = TestClient(create_app(runtime))
    drawn = new_key()
    record = ApiKey(
        key_id=drawn.key_id, workspace="demo", user_id="alice", name="ci", secret_hash=drawn.secret_hash,
        servers=("echo",), created_at=NOW - 60, expires_at=NOW + 60, user_groups=("engineering",),
    )  # fmt: skip
    runtime.api_keys.create_key(dataclasses.replace(record, **change))  # type: ignore[arg-type]
    key = drawn.value

    # When it calls
    response = client.post("/demo/echo/mcp", json=INITIALIZE, headers={"Authorization": f"Bearer {key}"})

    # Then it is refused like an invalid token, and nothing reached the upstream
    assert response.status_code == 401
    assert reason in response.json()["error_description"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert upstream[1].requests == []

"""A virtual route through the real proxy app (Starlette TestClient) in front of three real MCP servers on 127.0.0.1
(:mod:`tests.support.mini_mcp`): the upstreams, the runtime and the client the virtual-route tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.asgi_thread import AsgiThread
from infra.placeholders import grant_backed_token
from tests.support.mini_mcp import MiniMcp, serve
from tests.support.runtime import example_config_data, memory_runtime

MCP = "/demo/toolbox/mcp"
ACCEPT = "application/json, text/event-stream"


class Upstreams:
    def __init__(self) -> None:
        self.linear = MiniMcp("linear", ["list_issues", "get_issue", "delete_issue"], prompts=["triage"])
        self.github = MiniMcp(
            "github", [f"tool_{n:02d}" for n in range(5)], page_size=2, sse_calls=True, resources=["gh://readme"]
        )
        self.notes = MiniMcp(
            "notes", ["search", "find.by.tag"], resources=["notes://today"], instructions="Search notes first."
        )
        self.running: dict[str, AsgiThread] = {}

    def all(self) -> dict[str, MiniMcp]:
        return {"linear": self.linear, "github": self.github, "notes": self.notes}


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:  # re-exported by conftest.py
    found = Upstreams()
    for name, server in found.all().items():
        found.running[name] = serve(server)
    yield found
    for thread in found.running.values():
        thread.stop()


def virtual_runtime(upstreams: Upstreams, *, down: str | None = None, oauth: str | None = None) -> Runtime:
    data = example_config_data()
    urls = {name: thread.url for name, thread in upstreams.running.items()}
    if down:
        urls[down] = "http://127.0.0.1:9/mcp"  # discard port: nothing listens
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "title": "Acme toolbox",
        "timeout_seconds": 5,
        "upstreams": {
            "linear": {
                "url": urls["linear"],
                "tools": {"deny": ["delete_*"]},
                "projections": {"get_issue": {"name": "issue", "annotations": {"readOnlyHint": True}}},
            },
            "github": {"url": urls["github"], "prefix": "gh"},
            "notes": {"url": urls["notes"]},
        },
    }
    if oauth:  # this upstream needs each user's own account (none is connected in these tests)
        upstream = data["workspaces"]["demo"]["servers"]["toolbox"]["upstreams"][oauth]
        upstream["auth"] = {"type": "oauth", "authorization_server": "https://as.example.com", "client_id": "gw"}
        upstream["auth"]["registration"] = "preregistered"
    return memory_runtime(parse_config(data))


class Client:
    def __init__(self, runtime: Runtime, user: str = "alice") -> None:
        self.runtime = runtime
        self.http = TestClient(create_app(runtime))
        route = runtime.routes.get("demo", "toolbox")
        assert route is not None
        self.token = grant_backed_token(runtime, route, subject=user)
        self.session: str | None = None
        self.ids = 0
        self.notifications: list[dict[str, Any]] = []

    def post(self, message: Any, *, session: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"}
        if session or self.session:
            headers["Mcp-Session-Id"] = session or self.session or ""
        return self.http.post(MCP, json=message, headers=headers)

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.ids += 1
        response = self.post({"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params or {}})
        assert response.status_code == 200, response.text
        self.notifications = []
        if response.headers["content-type"].startswith("text/event-stream"):
            events = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
            *self.notifications, body = events
        else:
            body = response.json()
        assert body["id"] == self.ids
        return dict(body)

    def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": capabilities or {},
                    "clientInfo": {"name": "test"},
                },
            }
        )
        assert response.status_code == 200, response.text
        self.session = response.headers["mcp-session-id"]
        assert self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
        result: dict[str, Any] = response.json()["result"]
        return result


def all_tools(client: Client) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    params: dict[str, Any] = {}
    for _ in range(10):
        result = client.request("tools/list", params)["result"]
        tools += result["tools"]
        if "nextCursor" not in result:
            return tools
        params = {"cursor": result["nextCursor"]}
    raise AssertionError("the cursor never ended")


def stateless_post(client: Client, method: str, params: dict[str, Any] | None = None) -> Any:
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        "Authorization": f"Bearer {client.token}",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if params and "name" in params:
        headers["Mcp-Name"] = params["name"]
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": meta}}
    return client.http.post(MCP, json=message, headers=headers)

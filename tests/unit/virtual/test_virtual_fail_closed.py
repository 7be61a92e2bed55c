"""A virtual route fails closed and keeps what it learnt (issue "Fail closed" items 7, 8, 15; issue "house" item 3),
through the real proxy app in front of real MCP servers on 127.0.0.1: sessionless clients get upstream sessions of
their own route and workspace, only notifications reach upstreams and only those they concern, the merged-list
cache is bounded, and a hashed tool name never makes the route list its upstream again."""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.virtual.virtual_gateway import ACCEPT, Client, Upstreams, all_tools, virtual_runtime

MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


def _stateless_call(runtime: Runtime, workspace: str, server: str, tool: str) -> Any:
    route = runtime.routes.get(workspace, server)
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice")
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "_meta": MODERN_META}}
    return TestClient(create_app(runtime)).post(f"/{workspace}/{server}/mcp", json=message, headers=headers)


def test_sessionless_clients_get_upstream_sessions_of_their_own_workspace_and_route(upstreams: Upstreams) -> None:
    # Given the same upstream, named `notes`, behind three virtual routes: two in `demo`, one in another workspace
    # whose identity provider also has an "alice" (another person, perhaps)
    data = example_config_data()
    toolbox = {"upstreams": {"notes": {"url": upstreams.running["notes"].url}}}
    demo = data["workspaces"]["demo"]
    demo["servers"]["toolbox"] = toolbox
    demo["servers"]["other"] = copy.deepcopy(toolbox)
    acme = copy.deepcopy(demo)
    acme["servers"] = {"toolbox": copy.deepcopy(toolbox)}
    data["workspaces"]["acme"] = acme
    data.pop("default_route", None)
    runtime = memory_runtime(parse_config(data))

    # When a 2026-07-28 client (no session of its own) calls the upstream's tool through each route
    for workspace, server in (("demo", "toolbox"), ("demo", "other"), ("acme", "toolbox")):
        answer = _stateless_call(runtime, workspace, server, "notes_search")
        assert answer.status_code == 200, answer.text

    # Then each route opened an upstream session of its own (after the upstream refused the sessionless call): none
    # was shared across routes or workspaces
    calls = [headers.get("mcp-session-id") for method, _, headers in upstreams.notes.seen if method == "tools/call"]
    in_sessions = [session for session in calls if session is not None]
    assert upstreams.notes.methods().count("initialize") == 3
    assert len(in_sessions) == 3 and len(set(in_sessions)) == 3


def test_only_notifications_reach_upstreams_and_only_those_they_concern(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    seen = {name: len(server.seen) for name, server in upstreams.all().items()}

    # A request sent without an id would make every upstream run it (a denied tool, unaudited): refused
    smuggled = client.post({"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "linear_delete_issue"}})
    # A cancellation names a request id of the client's, which went upstream under an id of the gateway's: none
    cancelled = client.post({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
    assert smuggled.status_code == 400 and smuggled.json()["error"]["code"] == -32600
    assert cancelled.status_code == 202
    assert {name: len(server.seen) for name, server in upstreams.all().items()} == seen

    # A notification every upstream session is concerned with reaches each of them once
    changed = client.post({"jsonrpc": "2.0", "method": "notifications/roots/list_changed"})
    assert changed.status_code == 202
    for name, server in upstreams.all().items():
        assert server.methods()[seen[name] :] == ["notifications/roots/list_changed"], name
        assert server.methods().count("notifications/initialized") == 1  # the gateway's own, at initialize


def test_the_merged_list_cache_is_bounded(upstreams: Upstreams) -> None:
    # Given a virtual route whose merged lists may be reused for 30 s, in a container that keeps at most two
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 30,
        "upstreams": {"github": {"url": upstreams.running["github"].url, "prefix": "gh"}},
    }
    runtime = memory_runtime(parse_config(data))
    runtime.virtual_server.lists.max_entries = 2
    client = Client(runtime)
    client.initialize()

    # When the client lists the first page, then pages at cursors of its choosing (any cursor naming the upstream)
    client.request("tools/list")
    for position in ("1", "3"):
        cursor = base64.urlsafe_b64encode(json.dumps({"github": position}).encode()).decode().rstrip("=")
        client.request("tools/list", {"cursor": cursor})
    listed = upstreams.github.methods().count("tools/list")
    client.request("tools/list")

    # Then the cache held two pages at most: the first page was forgotten and asked of the upstream again
    assert len(runtime.virtual_server.lists) <= 2
    assert upstreams.github.methods().count("tools/list") == listed + 1


def test_a_hashed_tool_name_never_lists_its_upstream_again(upstreams: Upstreams) -> None:
    # Given a client that listed the route's tools, among them one whose name only fits in the hashed form
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    [hashed] = [tool["name"] for tool in all_tools(client) if tool["name"].startswith("notes_find")]
    listed = upstreams.notes.methods().count("tools/list")

    # When it calls that tool three times
    answers = [client.request("tools/call", {"name": hashed, "arguments": {"n": n}}) for n in range(3)]

    # Then each call reached the upstream under its own name, and the upstream's list was not read again
    assert [answer["result"]["content"][0]["text"] for answer in answers] == [
        f'notes:find.by.tag:{{"n": {n}}}' for n in range(3)
    ]
    assert upstreams.notes.methods().count("tools/list") == listed


def test_a_container_that_never_showed_a_hashed_name_lists_its_upstream_once(upstreams: Upstreams) -> None:
    # Given the hashed name a client learnt from another container
    first = Client(virtual_runtime(upstreams))
    first.initialize()
    [hashed] = [tool["name"] for tool in all_tools(first) if tool["name"].startswith("notes_find")]
    listed = upstreams.notes.methods().count("tools/list")

    # When it calls it three times through a fresh container
    fresh = Client(virtual_runtime(upstreams))
    fresh.initialize()
    for _ in range(3):
        assert "result" in fresh.request("tools/call", {"name": hashed, "arguments": {}})

    # Then that container read the upstream's list once, and never again
    assert upstreams.notes.methods().count("tools/list") == listed + 1


def test_the_list_cache_keeps_its_lifetime(upstreams: Upstreams) -> None:
    # The bound does not shorten the configured reuse: within 30 s, the same page is served from the cache
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 30,
        "upstreams": {"notes": {"url": upstreams.running["notes"].url}},
    }
    now = [time.time()]
    runtime = memory_runtime(parse_config(data), clock=lambda: now[0])
    client = Client(runtime)
    client.initialize()
    client.request("tools/list")
    now[0] += 29
    client.request("tools/list")
    assert upstreams.notes.methods().count("tools/list") == 1


def test_a_call_on_a_virtual_route_parses_the_client_body_once(upstreams: Upstreams, monkeypatch: Any) -> None:
    from tests.unit.proxy.test_one_parse import record_parses

    client = Client(virtual_runtime(upstreams))
    client.initialize()
    client.request("tools/list")
    parsed = record_parses(monkeypatch)
    message = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "notes_search", "arguments": {}}}

    answer = client.post(message)

    # The client's body once, the upstream's answer once, and the upstream sessions sealed in the client's session
    # id; never the request the gateway serialized for the upstream, nor the answer it serialized for the client
    assert answer.status_code == 200 and answer.json()["id"] == 9
    assert parsed.count(json.dumps(message, separators=(",", ":")).encode()) == 1  # as the client sent it
    assert answer.content not in parsed
    assert len(parsed) == 3

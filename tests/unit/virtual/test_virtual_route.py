"""A virtual route through the real proxy app (Starlette TestClient) in front of three real MCP servers on 127.0.0.1:
one session per upstream inside the client's, merged and filtered lists, calls routed under the upstream's own
name, pagination across upstreams, and an upstream that is down."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.virtual.catalog import exposed_name
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.virtual.virtual_gateway import (
    ACCEPT,
    MCP,
    Client,
    Upstreams,
    all_tools,
    stateless_post,
    virtual_runtime,
)


def test_initialize_opens_one_session_per_upstream_inside_the_clients(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    result = client.initialize()

    assert result["serverInfo"]["name"] == "demo/toolbox" and result["protocolVersion"] == "2025-11-25"
    assert set(result["capabilities"]) >= {"tools", "prompts", "resources"}
    assert "[notes] Search notes first." in result["instructions"]
    assert client.session is not None and client.session.startswith("g1.")
    for name, server in upstreams.all().items():
        assert server.methods()[:2] == ["initialize", "notifications/initialized"], name
        assert server.seen[1][2]["mcp-session-id"] == f"{name}-session-0"
        assert name not in client.session  # the upstreams' ids are sealed


def test_tools_are_merged_filtered_projected_and_paginated(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()

    tools = all_tools(client)

    names = [tool["name"] for tool in tools]
    assert sorted(names) == sorted(
        ["linear_list_issues", "linear_issue", "notes_search", exposed_name("notes", "find.by.tag")]
        + [f"gh_tool_{n:02d}" for n in range(5)]
    )
    assert "linear_delete_issue" not in names  # denied
    [issue] = [tool for tool in tools if tool["name"] == "linear_issue"]
    assert issue["annotations"] == {"readOnlyHint": True}
    # github pages by 2: the merged cursor carried its position, and later pages asked only github
    later = [headers for method, message, headers in upstreams.github.seen if message.get("params", {}).get("cursor")]
    assert len(later) == 2
    assert sum(1 for method in upstreams.linear.methods() if method == "tools/list") == 1


def test_a_call_reaches_its_upstream_under_its_own_name_with_its_session(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()

    renamed = client.request("tools/call", {"name": "linear_issue", "arguments": {"id": "A-1"}})
    over_sse = client.request("tools/call", {"name": "gh_tool_03", "arguments": {}})

    assert renamed["result"]["content"][0]["text"] == 'linear:get_issue:{"id": "A-1"}'
    assert over_sse["result"]["content"][0]["text"] == "github:tool_03:{}"  # the answer picked out of the SSE stream
    # and what the upstream sent before it on that stream (a log message) reached the client first, as an SSE event
    assert client.notifications == [
        {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "working"}}
    ]
    method, message, headers = upstreams.linear.seen[-1]
    assert method == "tools/call" and message["params"]["name"] == "get_issue"
    assert headers["mcp-session-id"] == "linear-session-0"
    assert "authorization" not in headers  # the client's token never travels upstream
    assert not any(m == "tools/call" for m in upstreams.notes.methods())


def test_a_name_in_the_hashed_form_is_looked_up_in_its_upstreams_list(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    [hashed] = [tool["name"] for tool in all_tools(client) if tool["name"].startswith("notes_find")]
    assert hashed.startswith("notes_find_by_tag__")  # clients accept only [A-Za-z0-9_-]

    answer = client.request("tools/call", {"name": hashed, "arguments": {"tag": "x"}})

    assert answer["result"]["content"][0]["text"] == 'notes:find.by.tag:{"tag": "x"}'


@pytest.mark.parametrize("name", ["linear_delete_issue", "linear_get_issue", "nobody_search", "gh_", 42])
def test_filtered_renamed_or_unknown_tools_are_invalid_params(upstreams: Upstreams, name: object) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    answer = client.request("tools/call", {"name": name, "arguments": {}})
    assert answer["error"]["code"] == -32602
    assert not any(m == "tools/call" for server in upstreams.all().values() for m in server.methods())


def test_prompts_and_resources_are_routed(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()

    prompts = client.request("prompts/list")["result"]["prompts"]
    assert [prompt["name"] for prompt in prompts] == ["linear_triage"]
    got = client.request("prompts/get", {"name": "linear_triage"})["result"]
    assert got["messages"][0]["content"]["text"] == "linear prompt triage"
    resources = client.request("resources/list")["result"]["resources"]
    assert sorted(resource["uri"] for resource in resources) == ["gh://readme", "notes://today"]
    read = client.request("resources/read", {"uri": "notes://today"})["result"]
    assert read["contents"][0]["text"] == "notes has notes://today"
    missing = client.request("resources/read", {"uri": "nowhere://x"})
    assert missing["error"]["code"] == -32002


def test_an_upstream_that_is_down_is_left_out_and_its_calls_name_it(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams, down="github"))
    client.initialize()

    names = [tool["name"] for tool in all_tools(client)]
    assert "notes_search" in names and not any(name.startswith("gh_") for name in names)
    answer = client.request("tools/call", {"name": "gh_tool_00", "arguments": {}})
    assert answer["error"]["code"] == -32603
    assert answer["error"]["data"]["upstream"] == "github"
    assert client.request("tools/call", {"name": "notes_search", "arguments": {}})["result"]["content"]


def test_ping_unknown_methods_and_bad_cursors_are_answered_here(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    before = sum(len(server.seen) for server in upstreams.all().values())
    assert client.request("ping")["result"] == {}
    assert client.request("sampling/nothing")["error"]["code"] == -32601
    forged = base64.urlsafe_b64encode(b'{"elsewhere":"1"}').decode().rstrip("=")
    assert client.request("tools/list", {"cursor": forged})["error"]["code"] == -32602
    assert client.request("tools/list", {"cursor": "not base64 !"})["error"]["code"] == -32602
    assert sum(len(server.seen) for server in upstreams.all().values()) == before


def test_the_session_is_bound_to_its_user_and_delete_ends_every_upstream_session(upstreams: Upstreams) -> None:
    runtime = virtual_runtime(upstreams)
    alice = Client(runtime)
    alice.initialize()
    bob = Client(runtime, user="bob")
    stolen = bob.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session=alice.session)
    assert stolen.status_code == 404

    ended = alice.http.delete(
        MCP, headers={"Authorization": f"Bearer {alice.token}", "Mcp-Session-Id": alice.session or ""}
    )
    assert ended.status_code == 200
    assert all(server.sessions == set() for server in upstreams.all().values())
    # and the ended session is unknown from then on (MCP §Session Management: 404, the client starts again)
    after = alice.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert after.status_code == 404 and after.json()["error"]["code"] == -32001


def test_a_single_upstream_session_id_is_unknown_on_a_virtual_route(upstreams: Upstreams) -> None:
    runtime = virtual_runtime(upstreams)
    client = Client(runtime)
    from gateway.proxy.session_ids import Session

    foreign = runtime.session_codec.seal(Session("plain-upstream-id"), route_key="demo/toolbox", user_id="alice")
    assert client.post({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session=foreign).status_code == 404


def test_an_upstream_the_user_has_not_connected_asks_to_connect_it_alone(upstreams: Upstreams) -> None:
    # Given a virtual route whose linear upstream needs alice's own account, and a client that declared URL elicitation
    client = Client(virtual_runtime(upstreams, oauth="linear"))
    client.initialize({"elicitation": {"form": {}, "url": {}}})

    # When she lists and calls tools
    names = [tool["name"] for tool in all_tools(client)]
    answer = client.request("tools/call", {"name": "linear_list_issues", "arguments": {}})

    # Then the other upstreams work, linear is left out of the list, and its call is -32042 with its own link
    assert "notes_search" in names and not any(name.startswith("linear_") for name in names)
    assert answer["error"]["code"] == -32042
    [elicitation] = answer["error"]["data"]["elicitations"]
    assert elicitation["mode"] == "url" and "upstream=linear" in elicitation["url"]
    assert "/demo/toolbox/connect?" in elicitation["url"]
    assert client.request("tools/call", {"name": "gh_tool_01", "arguments": {}})["result"]["content"]
    assert upstreams.linear.seen == []  # never called without a credential


def test_an_upstream_that_forgot_its_session_is_initialized_again_transparently(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    client.initialize()
    upstreams.notes.sessions.clear()  # the upstream restarted

    answer = client.request("tools/call", {"name": "notes_search", "arguments": {"q": "x"}})

    assert answer["result"]["content"][0]["text"] == 'notes:search:{"q": "x"}'
    assert upstreams.notes.methods()[-4:] == ["tools/call", "initialize", "notifications/initialized", "tools/call"]
    assert upstreams.notes.seen[-1][2]["mcp-session-id"] == "notes-session-1"
    # and the new session is used from then on
    client.request("tools/call", {"name": "notes_search", "arguments": {}})
    assert upstreams.notes.methods().count("initialize") == 2


def test_an_upstream_that_was_down_at_initialize_joins_the_session_when_it_is_back(upstreams: Upstreams) -> None:
    upstreams.github.refuse_initialize = 1
    client = Client(virtual_runtime(upstreams))
    client.initialize()  # github answers 503: left out of the client's session

    names = [tool["name"] for tool in all_tools(client)]

    # it was opened when next needed (here by the first list) and serves the list
    assert "gh_tool_00" in names
    assert upstreams.github.methods().count("initialize") == 2
    assert upstreams.github.sessions == {"github-session-0"}


def test_when_the_only_upstream_forgets_the_session_the_client_is_told_to_start_again(upstreams: Upstreams) -> None:
    data = example_config_data()
    notes = upstreams.running["notes"].url
    data["workspaces"]["demo"]["servers"]["toolbox"] = {"upstreams": {"notes": {"url": notes, "prefix": ""}}}
    client = Client(memory_runtime(parse_config(data)))
    client.initialize()
    upstreams.notes.sessions.clear()

    answer = client.post({"jsonrpc": "2.0", "id": 5, "method": "tools/list"})

    assert answer.status_code == 404  # as the upstream itself would answer: no silent new session
    assert upstreams.notes.methods().count("initialize") == 1


def test_a_2026_07_28_client_reaches_upstreams_that_only_speak_older_revisions(upstreams: Upstreams) -> None:
    # Given a stateless (2026-07-28) client, no initialize and no session, and upstreams that require sessions
    client = Client(virtual_runtime(upstreams))

    # When it discovers the route and lists and calls tools
    discovered = stateless_post(client, "server/discover")
    listed = stateless_post(client, "tools/list")
    called = stateless_post(client, "tools/call", {"name": "notes_search", "arguments": {"q": "y"}})

    # Then each upstream got a session of its own revision from the gateway, and the client what it expects
    assert discovered.status_code == 200, discovered.text
    result = discovered.json()["result"]
    assert result["supportedVersions"] == ["2026-07-28"] and "tools" in result["capabilities"]
    assert "mcp-session-id" not in discovered.headers
    tools = listed.json()["result"]
    assert {"resultType", "ttlMs", "cacheScope"} <= set(tools) and "notes_search" in [t["name"] for t in tools["tools"]]
    assert called.json()["result"]["content"][0]["text"] == 'notes:search:{"q": "y"}'
    assert upstreams.notes.methods().count("initialize") == 1  # one session per user in this container, reused
    assert upstreams.notes.seen[-1][2]["mcp-protocol-version"] == "2025-11-25"
    # an unknown method is HTTP 404 with -32601 for this revision
    unknown = stateless_post(client, "nothing/here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32601


def test_a_merged_list_is_reused_for_the_configured_time_only(upstreams: Upstreams) -> None:
    # Given a virtual route whose merged lists a warm container may reuse for 30 s, on a clock the test moves
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 30,
        "upstreams": {"notes": {"url": upstreams.running["notes"].url}},
    }
    now = [time.time()]  # tokens are issued at the real time; the test moves this clock from there
    runtime = memory_runtime(parse_config(data), clock=lambda: now[0])
    client = Client(runtime)
    client.initialize()

    first = client.request("tools/list")["result"]
    upstreams.notes.tools.append("added_later")
    again = client.request("tools/list")["result"]
    now[0] += 31
    later = client.request("tools/list")["result"]

    # Then the second list came from the cache (the upstream was asked once), the third from the upstream again
    assert again == first
    assert upstreams.notes.methods().count("tools/list") == 2
    assert "notes_added_later" in [tool["name"] for tool in later["tools"]]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"drop_meta": True}, 400, -32602),
        ({"header": ("Mcp-Method", "tools/call")}, 400, -32020),
        ({"header": ("MCP-Protocol-Version", "2099-01-01"), "version": "2099-01-01"}, 400, -32022),
        ({"method": "ping"}, 404, -32601),
    ],
)
def test_a_2026_07_28_request_that_fails_the_revisions_checks_is_refused_here(
    upstreams: Upstreams, change: dict[str, Any], status: int, code: int
) -> None:
    client = Client(virtual_runtime(upstreams))
    version = change.get("version", "2026-07-28")
    method = change.get("method", "tools/list")
    meta = {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}}
    params: dict[str, Any] = {} if change.get("drop_meta") else {"_meta": meta}
    headers = {"Authorization": f"Bearer {client.token}", "Accept": ACCEPT, "MCP-Protocol-Version": version}
    headers["Mcp-Method"] = method
    if "header" in change:
        name, value = change["header"]
        headers[name] = value
    message = {"jsonrpc": "2.0", "id": 9, "method": method, "params": params}

    answer = client.http.post(MCP, json=message, headers=headers)

    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert all(server.seen == [] for server in upstreams.all().values())  # refused before any upstream

"""A virtual route for both protocol eras (issue 24 items 2, 3 and 4): an upstream that needs the user's account is
named where the user sees it (instructions, a connect tool) and asked for in the era's form (``-32042``, or an
``input_required`` result whose retry goes to the same upstream); lists carry honest caching fields; tasks reach the
upstream that created them; an MCP Apps resource is read from the upstream whose tool points to it;
``Mcp-Param-*`` headers reach the upstream; a 2026-07-28 ``subscriptions/listen`` is answered at once."""

from __future__ import annotations

import json
import time
from typing import Any

from gateway.config import parse_config
from gateway.routes import Route
from gateway.upstream.credentials import NO_CREDENTIALS, UpstreamCredentialProvider
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.accounts import Account
from tests.unit.virtual.virtual_gateway import ACCEPT, MCP, Client, Upstreams, all_tools, virtual_runtime

URL: dict[str, Any] = {"elicitation": {"url": {}}}


def _with_account(client: Client, member: str, account: Account) -> None:
    """``member``'s upstream needs the user's account (``account``); the others none."""

    def provider(route: Route) -> UpstreamCredentialProvider:
        return account if route.member == member else NO_CREDENTIALS

    client.runtime.__dict__["credential_provider"] = provider
    client.runtime.__dict__.pop("virtual_server", None)


def modern(
    client: Client,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    capabilities: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """A 2026-07-28 request (no session): ``_meta`` and the routing headers as the revision wants them."""
    client.ids += 1
    params = params or {}
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": URL if capabilities is None else capabilities,
    }
    sent = {
        "Authorization": f"Bearer {client.token}",
        "Accept": ACCEPT,
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
        **(headers or {}),
    }
    name = params.get("name", params.get("uri", params.get("taskId")))
    if isinstance(name, str):
        sent["Mcp-Name"] = name
    message = {"jsonrpc": "2.0", "id": client.ids, "method": method, "params": {**params, "_meta": meta}}
    return client.http.post(MCP, json=message, headers=sent)


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]


# --- an upstream that needs the user's account -------------------------------------------------------------------


def test_the_route_names_the_account_to_connect_in_instructions_and_in_the_tool_list(upstreams: Upstreams) -> None:
    # Given a virtual route whose linear upstream needs alice's own account, which she has not connected
    account = Account(connect_url="https://gw.example.com/demo/toolbox/connect?upstream=linear")
    client = Client(virtual_runtime(upstreams))
    _with_account(client, "linear", account)

    # When her 2025-11-25 client initializes and lists tools
    initialized = client.initialize({"elicitation": {"url": {}}})
    tools = [tool["name"] for tool in all_tools(client)]

    # Then the instructions say which account to connect and where, beside the upstreams' own instructions
    assert account.connect_url in initialized["instructions"] and "connect_linear" in initialized["instructions"]
    assert "[notes] Search notes first." in initialized["instructions"]
    assert initialized["capabilities"]["tools"] == {"listChanged": True}
    # And the list names it by its connect tool, in linear's place (the configuration's order), then the others
    assert tools[0] == "connect_linear" and not any(name.startswith("linear_") for name in tools)
    assert tools[1:3] == ["gh_tool_00", "gh_tool_01"] and tools[3] == "notes_search"  # github pages by two
    assert [tool["name"] for tool in all_tools(client)] == tools  # the same order every time

    # When she calls the connect tool, it asks for the account (-32042); once connected it says so and that the
    # list changed, and the next list holds linear's tools
    asked = client.request("tools/call", {"name": "connect_linear", "arguments": {}})
    assert asked["error"]["code"] == -32042 and asked["error"]["data"]["elicitations"][0]["url"] == account.connect_url
    account.connect()
    done = client.request("tools/call", {"name": "connect_linear", "arguments": {}})
    assert "is connected" in done["result"]["content"][0]["text"]
    assert client.notifications == [{"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}]
    assert "linear_list_issues" in [tool["name"] for tool in all_tools(client)]


def test_a_route_whose_only_upstream_is_not_connected_still_initializes(upstreams: Upstreams) -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "upstreams": {"linear": {"url": upstreams.running["linear"].url, "prefix": ""}}
    }
    client = Client(memory_runtime(parse_config(data)))
    _with_account(client, "linear", Account())
    initialized = client.initialize()
    assert "connect_linear" in initialized["instructions"]
    assert [tool["name"] for tool in all_tools(client)] == ["connect_linear"]
    assert upstreams.linear.seen == []


def test_a_2026_client_discovers_the_account_to_connect_and_its_list_is_not_cached(upstreams: Upstreams) -> None:
    account = Account(connect_url="https://gw.example.com/demo/toolbox/connect?upstream=linear")
    client = Client(virtual_runtime(upstreams))
    _with_account(client, "linear", account)

    discovered = modern(client, "server/discover").json()["result"]
    listed = modern(client, "tools/list").json()["result"]

    assert account.connect_url in discovered["instructions"] and "tools" in discovered["capabilities"]
    assert discovered["ttlMs"] == 0 and discovered["cacheScope"] == "private"
    assert listed["tools"][0]["name"] == "connect_linear"
    assert listed["ttlMs"] == 0 and listed["cacheScope"] == "private"


def test_a_2026_call_asks_for_the_account_and_the_retry_goes_to_the_same_upstream(upstreams: Upstreams) -> None:
    # Given linear needs alice's account, and a 2026-07-28 client
    account = Account()
    client = Client(virtual_runtime(upstreams))
    _with_account(client, "linear", account)
    call = {"name": "linear_list_issues", "arguments": {"q": "open"}}

    # When the client calls a linear tool, it gets an input_required result naming linear's connect link
    asked = modern(client, "tools/call", call).json()["result"]
    assert asked["resultType"] == "input_required"
    ((key, request),) = asked["inputRequests"].items()
    assert key == "connect_linear" and request["params"] == {
        "mode": "url",
        "message": request["params"]["message"],
        "url": account.connect_url,
    }
    assert upstreams.linear.seen == []

    # When she connects and the client retries with the state, the call reaches linear, without the gateway's state
    account.connect()
    retry = {**call, "inputResponses": {key: {"action": "accept"}}, "requestState": asked["requestState"]}
    done = modern(client, "tools/call", retry).json()["result"]
    assert done["content"][0]["text"] == 'linear:list_issues:{"q": "open"}'
    sent = upstreams.linear.seen[-1][1]["params"]
    assert sent["name"] == "list_issues" and "requestState" not in sent and "inputResponses" not in sent

    # And a state altered on the way is refused saying why (HTTP 400, -32602), never reaching any upstream
    seen = len(upstreams.linear.seen)
    state = asked["requestState"]
    altered = state[:-3] + ("AAA" if not state.endswith("AAA") else "BBB")
    refused = modern(client, "tools/call", {**retry, "requestState": altered})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == -32602
    assert "requestState" in refused.json()["error"]["message"] and len(upstreams.linear.seen) == seen


def test_a_state_for_one_upstream_cannot_steer_a_call_to_another(upstreams: Upstreams) -> None:
    account = Account()
    client = Client(virtual_runtime(upstreams))
    _with_account(client, "linear", account)
    asked = modern(client, "tools/call", {"name": "linear_list_issues", "arguments": {}}).json()["result"]
    account.connect()
    other = {"name": "notes_search", "arguments": {}, "requestState": asked["requestState"]}
    refused = modern(client, "tools/call", other)
    assert refused.status_code == 400 and "another request" in refused.json()["error"]["message"]


def test_prompts_and_resources_take_the_same_credential_path(upstreams: Upstreams) -> None:
    account = Account()
    client = Client(virtual_runtime(upstreams))
    _with_account(client, "linear", account)
    client.initialize({"elicitation": {"url": {}}})

    prompt = client.request("prompts/get", {"name": "linear_triage"})
    resource = client.request("resources/read", {"uri": "linear://issue/1"})  # no connected upstream knows it
    known = client.request("resources/read", {"uri": "notes://today"})

    assert prompt["error"]["code"] == -32042 and resource["error"]["code"] == -32042
    assert known["result"]["contents"][0]["text"] == "notes has notes://today"

    # 2026-07-28: a resource read asks in the era's form, and the retry goes to the upstream that asked only
    asked = modern(client, "resources/read", {"uri": "linear://issue/1"}).json()["result"]
    assert asked["resultType"] == "input_required"
    account.connect()
    before = (len(upstreams.notes.seen), len(upstreams.github.seen))
    retry = {"uri": "linear://issue/1", "requestState": asked["requestState"]}
    modern(client, "resources/read", retry)
    assert upstreams.linear.methods()[-1] == "resources/read"
    assert (len(upstreams.notes.seen), len(upstreams.github.seen)) == before


# --- caching fields and order --------------------------------------------------------------------------------------


def test_lists_of_a_route_with_per_user_accounts_are_private_and_never_outlive_the_gateways_cache(
    upstreams: Upstreams,
) -> None:
    # Given upstreams that call their lists public and cacheable for an hour, behind a route where one upstream is
    # reached with each user's own account (connected here) and whose merged lists the gateway keeps 30 s
    for server in upstreams.all().values():
        server.list_caching = {"ttlMs": 3_600_000, "cacheScope": "public"}
    data = example_config_data()
    urls = {name: thread.url for name, thread in upstreams.running.items()}
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 30,
        "upstreams": {
            "linear": {"url": urls["linear"], "auth": {"type": "oauth", "authorization_server": "https://as.example.com",
                                                       "client_id": "gw", "registration": "preregistered"}},
            "notes": {"url": urls["notes"]},
        },
    }  # fmt: skip
    now = [time.time()]
    client = Client(memory_runtime(parse_config(data), clock=lambda: now[0]))
    _with_account(client, "linear", Account(connected=True))

    first = modern(client, "tools/list").json()["result"]
    asked = upstreams.notes.methods().count("tools/list")
    now[0] += 10
    again = modern(client, "tools/list").json()["result"]

    # Then the merged list is private (it may differ between users), lives no longer than the gateway's own copy,
    # and a copy served from the gateway's cache has its remaining life only
    assert first["cacheScope"] == "private" and first["ttlMs"] == 30_000
    assert again["tools"] == first["tools"] and 19_000 <= again["ttlMs"] <= 20_000
    assert upstreams.notes.methods().count("tools/list") == asked


def test_lists_of_shared_upstreams_stay_public_when_every_upstream_says_so(upstreams: Upstreams) -> None:
    for server in upstreams.all().values():
        server.list_caching = {"ttlMs": 60_000, "cacheScope": "public"}
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 120,
        "upstreams": {"notes": {"url": upstreams.running["notes"].url}},
    }
    listed = modern(Client(memory_runtime(parse_config(data))), "tools/list").json()["result"]
    assert listed["cacheScope"] == "public" and listed["ttlMs"] == 60_000


def test_a_page_that_lacks_an_upstream_is_not_kept_by_the_gateway(upstreams: Upstreams) -> None:
    data = example_config_data()
    urls = {name: thread.url for name, thread in upstreams.running.items()}
    data["workspaces"]["demo"]["servers"]["toolbox"] = {
        "list_cache_seconds": 60,
        "upstreams": {"linear": {"url": urls["linear"]}, "notes": {"url": urls["notes"]}},
    }
    account = Account()
    client = Client(memory_runtime(parse_config(data)))
    _with_account(client, "linear", account)
    client.initialize()
    assert "connect_linear" in [tool["name"] for tool in all_tools(client)]
    account.connect()
    assert "linear_list_issues" in [tool["name"] for tool in all_tools(client)]  # not the stale page


# --- both eras, tasks, MCP Apps, Mcp-Param-* ---------------------------------------------------------------------


def test_a_client_that_discovers_then_initializes_gets_both_answers_and_a_working_session(
    upstreams: Upstreams,
) -> None:
    # Claude Code 2.1 probes with server/discover, then initializes (the session era) on the same URL
    client = Client(virtual_runtime(upstreams))
    discovered = modern(client, "server/discover")
    initialized = client.initialize()
    assert discovered.status_code == 200 and discovered.json()["result"]["supportedVersions"] == ["2026-07-28"]
    assert initialized["protocolVersion"] == "2025-11-25" and client.session
    assert client.request("tools/call", {"name": "notes_search", "arguments": {}})["result"]["content"]


def test_a_listen_is_acknowledged_and_closed_at_once(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    response = modern(client, "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
    acknowledged, closed = _events(response.text)
    assert acknowledged["method"] == "notifications/subscriptions/acknowledged"
    assert acknowledged["params"]["notifications"] == {}
    assert closed["id"] == client.ids and closed["result"]["resultType"] == "complete"


def test_tasks_reach_the_upstream_that_created_them(upstreams: Upstreams) -> None:
    # Given an upstream whose tool answers with a task (the io.modelcontextprotocol/tasks extension)
    upstreams.github.task_tools = ["tool_03"]
    client = Client(virtual_runtime(upstreams))
    tasks: dict[str, Any] = {"extensions": {"io.modelcontextprotocol/tasks": {}}}

    created = modern(client, "tools/call", {"name": "gh_tool_03", "arguments": {}}, capabilities=tasks).json()
    task_id = created["result"]["taskId"]
    got = modern(client, "tasks/get", {"taskId": task_id}, capabilities=tasks).json()["result"]
    cancelled = modern(client, "tasks/cancel", {"taskId": task_id}, capabilities=tasks).json()
    unknown = modern(client, "tasks/get", {"taskId": "nobody.task"}, capabilities=tasks).json()

    # Then the task id the client sees names its upstream, and every tasks method reached that upstream with its id
    assert created["result"]["resultType"] == "task" and task_id == "github.github-task-1"
    assert got["status"] == "completed" and got["taskId"] == task_id
    assert got["result"]["content"][0]["text"] == "github task done"
    assert cancelled["result"]["resultType"] == "complete"
    assert [m for m in upstreams.github.methods() if m.startswith("tasks/")] == ["tasks/get", "tasks/cancel"]
    assert upstreams.github.seen[-1][1]["params"]["taskId"] == "github-task-1"
    assert unknown["error"]["code"] == -32602
    assert not any(m.startswith("tasks/") for m in upstreams.notes.methods() + upstreams.linear.methods())


def test_an_mcp_apps_resource_is_read_from_the_upstream_whose_tool_points_to_it(upstreams: Upstreams) -> None:
    # Given notes' search tool points to ui://app/view.html, a URI github (earlier in the route) also serves
    upstreams.notes.tool_meta = {"search": {"ui": {"resourceUri": "ui://app/view.html"}}}
    upstreams.notes.resources.append("ui://app/view.html")
    upstreams.github.resources.append("ui://app/view.html")
    upstreams.notes.instructions = None
    client = Client(virtual_runtime(upstreams))
    client.initialize()

    # When the client lists tools and reads the resource the tool names
    (tool,) = [tool for tool in all_tools(client) if tool["name"] == "notes_search"]
    read = client.request("resources/read", {"uri": tool["_meta"]["ui"]["resourceUri"]})

    # Then it is notes' resource, under the name the tool points to
    assert read["result"]["contents"][0] == {"uri": "ui://app/view.html", "text": "notes has ui://app/view.html"}
    assert "resources/read" not in upstreams.github.methods()


def test_extensions_an_upstream_offers_are_offered_by_the_route(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    from gateway.virtual.merge import merge_capabilities

    merged: dict[str, Any] = {}
    merge_capabilities(merged, {"tools": {}, "extensions": {"io.modelcontextprotocol/ui": {"mimeTypes": ["x"]}}})
    merge_capabilities(merged, {"extensions": {"io.modelcontextprotocol/tasks": {}}})
    assert merged["extensions"] == {
        "io.modelcontextprotocol/ui": {"mimeTypes": ["x"]},
        "io.modelcontextprotocol/tasks": {},
    }
    assert client.initialize()["capabilities"].get("extensions") is None  # none of these upstreams offers one


def test_mcp_param_headers_reach_the_upstream_of_the_call(upstreams: Upstreams) -> None:
    client = Client(virtual_runtime(upstreams))
    params = {"name": "notes_search", "arguments": {"region": "us-west1"}}
    modern(client, "tools/call", params, headers={"Mcp-Param-Region": "us-west1"})
    call = [headers for method, _, headers in upstreams.notes.seen if method == "tools/call"][-1]
    assert call["mcp-param-region"] == "us-west1"
    assert all("mcp-param-region" not in headers for _, _, headers in upstreams.github.seen)


def test_an_upstreams_own_input_required_passes_through_and_its_retry_reaches_it_under_its_own_name(
    upstreams: Upstreams,
) -> None:
    # Given a modern upstream (2026-07-28) behind a prefix, whose tool asks the client a question of its own
    upstreams.github.modern = True
    upstreams.github.input_tools = ["tool_02"]
    client = Client(virtual_runtime(upstreams))

    # When a 2026-07-28 client calls it, then the upstream's input_required reaches it unchanged
    asked = modern(client, "tools/call", {"name": "gh_tool_02", "arguments": {}}).json()["result"]
    assert asked["resultType"] == "input_required" and asked["requestState"] == "github-state"
    assert list(asked["inputRequests"]) == ["confirm"]

    # When the client retries under the name it saw, with the upstream's state and its answer
    retry = {"name": "gh_tool_02", "arguments": {}, "requestState": "github-state",
             "inputResponses": {"confirm": {"action": "accept", "content": {}}}}  # fmt: skip
    done = modern(client, "tools/call", retry).json()["result"]

    # Then the upstream got them with its own tool name, and completed the call
    sent = upstreams.github.seen[-1][1]["params"]
    assert sent["name"] == "tool_02" and sent["requestState"] == "github-state"
    assert sent["inputResponses"] == {"confirm": {"action": "accept", "content": {}}}
    assert done["content"][0]["text"].startswith("confirmed")
    assert "initialize" not in upstreams.github.methods()  # spoken to in its own revision, no session

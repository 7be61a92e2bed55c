"""Names clients see on a virtual route, and the way back to the upstream's own names."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ToolFilter, VirtualUpstream
from gateway.virtual.catalog import Catalog, allowed, exposed_name, is_hashed, members_of

CLIENT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def catalog(**upstreams: dict[str, Any]) -> Catalog:
    return Catalog(members_of({name: VirtualUpstream.model_validate(data) for name, data in upstreams.items()}))


def tools(*names: str) -> list[dict[str, Any]]:
    return [{"name": name, "description": f"{name} does things", "inputSchema": {"type": "object"}} for name in names]


def test_plain_names_take_the_prefix_and_come_back_without_a_list() -> None:
    virtual = catalog(linear={"url": "https://linear.example.com/mcp"}, gh={"url": "https://gh.example.com/mcp"})
    [member] = [m for m in virtual.members if m.name == "linear"]
    assert [tool["name"] for tool in virtual.tools(member, tools("list_issues"))] == ["linear_list_issues"]
    target = virtual.tool_target("linear_list_issues")
    assert target is not None and (target[0].name, target[1]) == ("linear", "list_issues")
    assert virtual.tool_target("nobody_list_issues") is None


@given(st.text(min_size=1, max_size=120), st.sampled_from(["a", "linear", "x" * 31]))
def test_every_exposed_name_is_one_clients_accept(name: str, prefix: str) -> None:
    shown = exposed_name(prefix, name)
    assert CLIENT_NAME.match(shown), shown
    assert shown == exposed_name(prefix, name)  # stable
    if is_hashed(shown):
        # the hashed form never equals the plain name of another tool that fits
        assert shown != f"{prefix}_{name}"


def test_long_or_odd_names_get_a_stable_hashed_form_found_in_the_list() -> None:
    virtual = catalog(up={"url": "https://up.example.com/mcp"})
    [member] = virtual.members
    long_name, dotted = "a" * 80, "repo.get/issue"
    shown = [tool["name"] for tool in virtual.tools(member, tools(long_name, dotted, "a" * 79))]
    assert all(len(name) <= 64 and is_hashed(name) for name in shown)
    assert len(set(shown)) == 3  # no collision though two share their first 60 characters
    assert virtual.tool_target(shown[0]) is None  # needs the list
    assert virtual.find_tool(member, shown[0], tools(long_name, dotted)) == long_name
    assert virtual.find_tool(member, shown[1], tools(long_name, dotted)) == dotted


def test_filters_allow_then_deny_with_globs() -> None:
    rules = ToolFilter(allow=["list_*", "get_issue"], deny=["list_secrets"])
    assert allowed("list_issues", rules) and allowed("get_issue", rules)
    assert not allowed("list_secrets", rules) and not allowed("delete_issue", rules)
    assert allowed("anything", ToolFilter())


def test_filtered_tools_are_neither_listed_nor_callable() -> None:
    virtual = catalog(up={"url": "https://up.example.com/mcp", "tools": {"deny": ["delete_*"]}})
    [member] = virtual.members
    assert [t["name"] for t in virtual.tools(member, tools("get", "delete_all"))] == ["up_get"]
    assert virtual.tool_target("up_delete_all") is None


def test_projections_rename_describe_and_annotate() -> None:
    virtual = catalog(
        up={
            "url": "https://up.example.com/mcp",
            "projections": {
                "get_issue": {"name": "issue", "description": "Read one issue.", "annotations": {"readOnlyHint": True}}
            },
        }
    )
    [member] = virtual.members
    listed = tools("get_issue")
    listed[0]["annotations"] = {"title": "Get", "readOnlyHint": False}
    [shown] = virtual.tools(member, listed)
    assert shown["name"] == "up_issue" and shown["description"] == "Read one issue."
    assert shown["annotations"] == {"title": "Get", "readOnlyHint": True}
    assert listed[0]["annotations"]["readOnlyHint"] is False  # the upstream's list is not changed
    target = virtual.tool_target("up_issue")
    assert target is not None and target[1] == "get_issue"
    assert virtual.tool_target("up_get_issue") is None  # its old name is not this route's


def test_prefixes_with_underscores_resolve_to_the_right_upstream() -> None:
    virtual = catalog(
        a={"url": "https://a.example.com/mcp", "prefix": "my_tools"}, b={"url": "https://b.example.com/mcp"}
    )
    target = virtual.tool_target("my_tools_search")
    assert target is not None and (target[0].name, target[1]) == ("a", "search")
    prompt = virtual.prompt_target("b_summarize")
    assert prompt is not None and (prompt[0].name, prompt[1]) == ("b", "summarize")


@pytest.mark.parametrize("listed", [[], [{"name": 3}], ["x"], [{"title": "no name"}]])
def test_malformed_list_entries_are_dropped(listed: list[Any]) -> None:
    virtual = catalog(up={"url": "https://up.example.com/mcp"})
    assert virtual.tools(virtual.members[0], listed) == []


def test_a_routes_only_upstream_may_keep_its_own_names() -> None:
    virtual = catalog(fixture={"url": "https://f.example.com/mcp", "prefix": "", "tools": {"deny": ["secret"]}})
    [member] = virtual.members
    assert [tool["name"] for tool in virtual.tools(member, tools("test_simple_text", "secret"))] == ["test_simple_text"]
    target = virtual.tool_target("test_simple_text")
    assert target is not None and target[1] == "test_simple_text"
    assert virtual.tool_target("secret") is None
    prompt = virtual.prompt_target("test_prompt")
    assert prompt is not None and prompt[1] == "test_prompt"

"""Route URLs: one issuer per route, every URL from the configured base URL."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.routes import RouteTable, workspace_callback_url
from tests.support.runtime import example_config_data


def test_route_urls_derive_from_the_base_url() -> None:
    routes = RouteTable(parse_config(example_config_data()), "https://gw.example.com/")
    route = routes.get("demo", "echo")
    assert route is not None
    assert route.resource == "https://gw.example.com/demo/echo/mcp"
    assert route.issuer == "https://gw.example.com/demo/echo"
    assert route.endpoint("token") == "https://gw.example.com/demo/echo/token"
    assert route.resource_metadata_url == "https://gw.example.com/.well-known/oauth-protected-resource/demo/echo/mcp"
    assert route.scopes_supported == ["mcp", "offline_access"]
    assert route.default_scopes == ["mcp"]
    assert workspace_callback_url(routes.base_url, "demo") == "https://gw.example.com/demo/oidc/callback"


def test_unknown_routes_and_the_default_route() -> None:
    routes = RouteTable(parse_config(example_config_data()), "https://gw.example.com")
    assert routes.get("demo", "nope") is None
    assert routes.get("nope", "echo") is None
    default = routes.default_route
    assert default is not None and default.key == "demo/echo"
    data = example_config_data()
    data.pop("default_route")
    assert RouteTable(parse_config(data), "https://gw.example.com").default_route is None


def test_a_resource_matches_its_route_canonically() -> None:
    routes = RouteTable(parse_config(example_config_data()), "https://gw.example.com")
    route = routes.get("demo", "echo")
    assert route is not None
    assert route.is_resource("https://gw.example.com/demo/echo/mcp")
    assert route.is_resource("https://gw.example.com/demo/echo/mcp/")  # Claude Code's trailing slash
    assert route.is_resource("HTTPS://GW.Example.com/demo/echo/mcp")  # scheme and host are case-insensitive
    assert not route.is_resource("https://gw.example.com/DEMO/echo/mcp")  # the path is not
    assert not route.is_resource("https://gw.example.com/demo/other/mcp")
    assert not route.is_resource("https://evil.example/demo/echo/mcp")


def test_lists_are_private_to_the_caller_where_an_access_policy_or_a_users_own_account_shapes_them() -> None:
    # MCP 2026-07-28 §Server "Caching": a list that can differ between callers must not be shared by caches
    # (cacheScope "private"); the proxy and the virtual server both ask the route.
    def echo_with(**server: object) -> bool:
        data = example_config_data()
        data["workspaces"]["demo"]["servers"]["echo"].update(server)
        route = RouteTable(parse_config(data), "https://gw.example.com").get("demo", "echo")
        assert route is not None
        return route.lists_depend_on_caller

    assert echo_with() is False  # everyone signed in sees the same upstream with the same credential
    assert echo_with(access={"users": ["alice"]}) is True
    assert echo_with(access={"groups": ["engineering"]}) is True
    per_user = {"type": "oauth", "authorization_server": "https://as.example.com", "client_id": "gw"}
    assert echo_with(auth=per_user) is True

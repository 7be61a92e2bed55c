"""``infra.dev_overview``: what ``make dev`` prints and the start page it serves at its own address (issue 21 items
4 and 6)."""

from __future__ import annotations

from typing import Any

from gateway.config import parse_config
from infra.dev_overview import Overview, banner_sections, build_overview, local_pages
from infra.lambda_event import HttpRequest
from tests.support.runtime import example_config_data

BASE = "http://127.0.0.1:9000"
DEFAULT_UPSTREAM = "http://127.0.0.1:9001/mcp"


def overview(
    data: dict[str, Any] | None = None, *, upstream_url: str | None = DEFAULT_UPSTREAM, admin: bool = False
) -> Overview:
    return build_overview(
        parse_config(data or example_config_data()),
        BASE,
        config_source="my-gateway.yaml",
        upstream_url=upstream_url,
        default_upstream_url=DEFAULT_UPSTREAM,
        serves=lambda method, path: admin and path == "/demo/admin",
    )


def get(view: Overview, path: str, accept: str = "*/*", method: str = "GET") -> tuple[int, str] | None:
    answer = local_pages(view)(HttpRequest(method, path, headers=[("accept", accept)]))
    return None if answer is None else (answer.status, answer.body.decode())


# --- the banner -----------------------------------------------------------------------------------------------------


def test_a_copy_of_the_example_served_with_another_upstream_port_is_told_which_key_to_change() -> None:
    # Given a copy of the example (its routes point at 127.0.0.1:9001) served while the demo upstream runs on 9101
    view = overview(upstream_url="http://127.0.0.1:9101/mcp")

    # When the banner is printed
    text = "\n".join(banner_sections(view))

    # Then it names each route that points at 9001, the key to change, the value to set and the file
    assert "route demo/echo (workspaces.demo.servers.echo.upstream)" in text
    assert "route demo/toolbox (workspaces.demo.servers.toolbox.upstreams.demo.url)" in text
    assert "set that key to http://127.0.0.1:9101/mcp in my-gateway.yaml" in text
    assert "or start make dev without UPSTREAM_PORT" in text


def test_a_configuration_that_uses_the_demo_upstream_gets_no_note() -> None:
    assert overview().notes == ()


def test_a_configuration_without_the_demo_upstream_is_told_it_is_unused() -> None:
    data = example_config_data()
    for server in data["workspaces"]["demo"]["servers"].values():
        if "upstream" in server:
            server["upstream"] = "https://mcp.example.com/mcp"
        for member in (server.get("upstreams") or {}).values():
            member["url"] = "https://mcp.example.com/mcp"
    assert overview(data).notes == ("no route of my-gateway.yaml uses the demo upstream",)


def test_the_banner_names_the_start_page_my_connections_and_the_dev_login() -> None:
    text = "\n".join(banner_sections(overview(admin=True)))
    assert f"Start page: {BASE}/" in text
    assert f"My connections (demo): {BASE}/demo/connections" in text
    assert f"Admin console (demo): {BASE}/demo/admin" in text
    assert "Dev login for workspace demo: alice / alice-password" in text
    assert f"claude mcp add --transport http echo {BASE}/demo/echo/mcp" in text


# --- the start page -------------------------------------------------------------------------------------------------


def test_the_root_and_a_workspaces_address_answer_the_start_page() -> None:
    for path in ("/", "/demo", "/demo/"):
        answer = get(overview(), path)
        assert answer is not None
        status, page = answer
        assert status == 200
        assert f"claude mcp add --transport http echo {BASE}/demo/echo/mcp" in page
        assert f'href="{BASE}/demo/connections"' in page
        assert "mcp-gateway admin --local routes" in page


def test_the_admin_console_is_linked_once_the_template_serves_it() -> None:
    without = get(overview(), "/")
    with_console = get(overview(admin=True), "/")
    assert without is not None and with_console is not None
    assert "/demo/admin" not in without[1]
    assert f'href="{BASE}/demo/admin"' in with_console[1]


def test_a_browser_at_a_mistyped_address_gets_a_404_that_points_at_what_it_meant() -> None:
    answer = get(overview(), "/demo/connections/", accept="text/html,application/xhtml+xml")
    assert answer is not None
    status, page = answer
    assert status == 404
    assert "Nothing is served at <code>/demo/connections/</code>" in page
    assert f'Did you mean <a href="{BASE}/demo/connections">' in page


def test_api_clients_and_other_methods_keep_api_gateways_404() -> None:
    assert get(overview(), "/demo/connections/", accept="application/json") is None
    assert get(overview(), "/nope", accept="*/*") is None
    assert get(overview(), "/", method="POST") is None


def test_what_the_configuration_says_is_escaped_on_the_page() -> None:
    data = example_config_data()
    data["workspaces"]["demo"]["title"] = "<script>alert(1)</script>"
    answer = get(overview(data), "/")
    assert answer is not None
    assert "<script>" not in answer[1] and "&lt;script&gt;" in answer[1]

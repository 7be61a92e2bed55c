"""Static upstream headers: resolved from secret references, cached for a while, re-read after a 401."""

from __future__ import annotations

import asyncio

from gateway.config import parse_config
from gateway.routes import RouteTable
from gateway.secrets import SecretResolver
from gateway.upstream.credentials import NO_CREDENTIALS
from gateway.upstream.static_headers import StaticHeadersProvider
from tests.support.runtime import example_config_data, memory_runtime


def _route(auth: dict[str, object]):  # type: ignore[no-untyped-def]
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["auth"] = auth
    route = RouteTable(parse_config(data), "https://gw.example.com").get("demo", "echo")
    assert route is not None
    return route


def test_values_are_cached_until_they_age_and_reread_at_once_after_a_401() -> None:
    # Given a header whose secret lives in an environment and a clock we move
    environ = {"KEY": "one"}
    now = [0.0]
    provider = StaticHeadersProvider(
        lambda max_age: SecretResolver(environ=environ, max_age_seconds=max_age), 300, clock=lambda: now[0]
    )
    route = _route({"type": "headers", "headers": {"X-Api-Key": "env:KEY", "X-Team": "plain:t1"}})

    first = asyncio.run(provider.headers(route, "alice"))
    environ["KEY"] = "two"
    cached = asyncio.run(provider.headers(route, "bob"))
    now[0] = 301
    aged = asyncio.run(provider.headers(route, "alice"))
    environ["KEY"] = "three"
    renewed = asyncio.run(provider.after_unauthorized(route, "alice"))

    assert first == {"X-Api-Key": "one", "X-Team": "t1"}
    assert cached == first  # the same for every user, from the warm cache
    assert aged["X-Api-Key"] == "two"
    assert renewed["X-Api-Key"] == "three"
    assert asyncio.run(provider.headers(route, "alice"))["X-Api-Key"] == "three"


def test_routes_without_credentials_send_none() -> None:
    route = _route({"type": "none"})
    assert memory_runtime().credential_provider(route) is NO_CREDENTIALS
    assert asyncio.run(NO_CREDENTIALS.headers(route, "alice")) == {}


def test_each_auth_kind_gets_its_container_wide_provider() -> None:
    runtime = memory_runtime()
    headers = _route({"type": "headers", "headers": {"X-Api-Key": "plain:k"}})
    assert runtime.credential_provider(headers) is runtime.static_headers
    assert runtime.credential_provider(headers) is runtime.credential_provider(headers)

"""The authorization request: every refusal, and random input yields only a request or one of the two errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.crypto.pkce import s256
from gateway.oauth.authorize_request import (
    AuthorizeRequest,
    RedirectableError,
    UnsafeToRedirect,
    error_redirect,
    parse_authorize_request,
    redirect_with,
)
from gateway.oauth.errors import OAuthError
from gateway.routes import Route
from gateway.storage.records import ClientSource
from tests.support.runtime import memory_runtime

CHALLENGE = s256("v" * 64)
REDIRECT = "http://127.0.0.1:33418/callback"


@dataclass(frozen=True)
class FakeClient:
    client_id: str
    client_name: str = "Test Client"
    source: ClientSource = "dcr"
    redirect_uris: tuple[str, ...] = (REDIRECT,)
    client_uri: str | None = None
    logo_uri: str | None = None


class FakeLookup:
    def __init__(self, *clients: FakeClient) -> None:
        self.clients = {client.client_id: client for client in clients}

    async def resolve(self, route: Route, client_id: str, now: int) -> FakeClient:
        if client_id == "flaky":
            raise OAuthError("temporarily_unavailable", "store down")
        try:
            return self.clients[client_id]
        except KeyError:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}") from None


LOOKUP = FakeLookup(
    FakeClient("one"),
    FakeClient("two", redirect_uris=("https://app.example.com/cb", "cursor://anysphere.cursor-mcp/oauth/callback")),
)


def _demo_route() -> Route:
    found = memory_runtime().routes.get("demo", "echo")
    assert found is not None
    return found


ROUTE = _demo_route()


@pytest.fixture
def route() -> Route:
    return ROUTE


def good(**overrides: str | None) -> list[tuple[str, str]]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "one",
        "redirect_uri": REDIRECT,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "xyz",
    }
    params.update(overrides)
    return [(key, value) for key, value in params.items() if value is not None]


def parse(params: list[tuple[str, str]], route: Route) -> AuthorizeRequest:
    return asyncio.run(parse_authorize_request(params, route, LOOKUP, 1_000))


def redirected(params: list[tuple[str, str]], route: Route) -> RedirectableError:
    with pytest.raises(RedirectableError) as caught:
        parse(params, route)
    return caught.value


def test_a_claude_code_like_request_gets_the_route_resource_and_default_scopes(route: Route) -> None:
    # Given a request without scope and resource (Claude Code) / When parsed
    request = parse(good(), route)
    # Then the route fills them in
    assert request.scopes == ("mcp",)
    assert request.resource == "https://gw.example.com/demo/echo/mcp"
    assert request.state == "xyz"
    assert request.redirect_uri == REDIRECT


def test_resource_with_a_trailing_slash_is_the_route(route: Route) -> None:
    request = parse(good(resource=route.resource + "/"), route)
    assert request.resource == route.resource


def test_requested_scopes_are_kept_in_order_without_duplicates(route: Route) -> None:
    request = parse(good(scope="offline_access mcp mcp"), route)
    assert request.scopes == ("offline_access", "mcp")


def test_loopback_redirect_on_another_port_matches(route: Route) -> None:
    request = parse(good(redirect_uri="http://127.0.0.1:5555/callback"), route)
    assert request.redirect_uri == "http://127.0.0.1:5555/callback"


def test_redirect_uri_defaults_to_the_only_registered_one(route: Route) -> None:
    assert parse(good(redirect_uri=None), route).redirect_uri == REDIRECT


@pytest.mark.parametrize(
    ("overrides", "title"),
    [
        ({"client_id": None}, "Invalid request"),
        ({"client_id": "nobody"}, "Unknown application"),
        ({"redirect_uri": "https://evil.example.com/cb"}, "Invalid redirect URI"),
        ({"client_id": "two", "redirect_uri": None}, "Invalid request"),
    ],
)
def test_client_or_redirect_problems_are_never_redirected(
    route: Route, overrides: dict[str, str | None], title: str
) -> None:
    with pytest.raises(UnsafeToRedirect) as caught:
        parse(good(**overrides), route)
    assert caught.value.title == title
    assert caught.value.status_code == 400


def test_repeated_client_id_or_redirect_uri_is_not_redirected(route: Route) -> None:
    for name, value in (("client_id", "one"), ("redirect_uri", REDIRECT)):
        with pytest.raises(UnsafeToRedirect):
            parse([*good(), (name, value)], route)


def test_an_unavailable_client_store_is_a_503_page(route: Route) -> None:
    with pytest.raises(UnsafeToRedirect) as caught:
        parse(good(client_id="flaky"), route)
    assert caught.value.status_code == 503


@pytest.mark.parametrize(
    ("overrides", "error", "mentions"),
    [
        ({"response_type": None}, "invalid_request", "response_type"),
        ({"response_type": "token"}, "unsupported_response_type", "token"),
        ({"response_mode": "fragment"}, "invalid_request", "response_mode"),
        ({"code_challenge": None}, "invalid_request", "PKCE"),
        ({"code_challenge_method": None}, "invalid_request", "S256"),
        ({"code_challenge_method": "plain"}, "invalid_request", "plain"),
        ({"code_challenge": "short"}, "invalid_request", "43"),
        ({"resource": "https://gw.example.com/demo/other/mcp"}, "invalid_target", "demo/other"),
        ({"resource": "https://gw.example.com/demo/echo/mcp//"}, "invalid_target", "resource"),
        ({"scope": "mcp admin"}, "invalid_scope", "admin"),
        ({"state": "s" * 3000}, "invalid_request", "state"),
    ],
)
def test_other_errors_are_redirected_to_the_client(
    route: Route, overrides: dict[str, str | None], error: str, mentions: str
) -> None:
    problem = redirected(good(**overrides), route)
    assert problem.error.error == error
    assert mentions in problem.error.description
    assert problem.redirect_uri == REDIRECT


def test_repeated_parameters_are_invalid_requests_but_several_equal_resources_are_fine(route: Route) -> None:
    problem = redirected([*good(), ("scope", "mcp"), ("scope", "mcp")], route)
    assert problem.error.error == "invalid_request"
    assert "scope" in problem.error.description
    assert redirected([*good(), ("state", "again")], route).state is None
    request = parse([*good(), ("resource", route.resource), ("resource", route.resource + "/")], route)
    assert request.resource == route.resource


def test_the_error_redirect_carries_error_description_state_and_iss(route: Route) -> None:
    # RFC 6749 §4.1.2.1 and RFC 9207 §2
    problem = redirected(good(code_challenge_method="plain"), route)
    url = urlsplit(error_redirect(route, problem))
    query = parse_qs(url.query)
    assert url.netloc == "127.0.0.1:33418"
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["xyz"]
    assert query["iss"] == [route.issuer]
    assert "S256" in query["error_description"][0]


def test_redirect_with_keeps_the_redirect_uris_own_query() -> None:
    assert redirect_with("https://a.example/cb?x=1", {"code": "c", "state": None}) == "https://a.example/cb?x=1&code=c"


PARAM_NAMES = st.sampled_from(
    [
        "response_type",
        "client_id",
        "redirect_uri",
        "code_challenge",
        "code_challenge_method",
        "state",
        "scope",
        "resource",
        "response_mode",
        "other",
    ]
)
PARAM_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["code", "one", "two", REDIRECT, CHALLENGE, "S256", "plain", "mcp", "offline_access"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(PARAM_NAMES, PARAM_VALUES), max_size=12))
def test_random_query_strings_yield_a_request_or_an_oauth_refusal(params: list[tuple[str, str]]) -> None:
    route = ROUTE
    try:
        request = asyncio.run(parse_authorize_request(params, route, LOOKUP, 1_000))
    except (UnsafeToRedirect, RedirectableError):
        return
    assert request.code_challenge and request.scopes and request.resource == route.resource

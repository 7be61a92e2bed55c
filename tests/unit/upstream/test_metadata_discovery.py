"""Discovery of an upstream's authorization server: 401 challenge → PRM (RFC 9728) → AS metadata (RFC 8414)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.routes import Route, RouteTable
from gateway.upstream.metadata_discovery import (
    Discovery,
    DiscoveryError,
    as_metadata_urls,
    bearer_challenge_params,
    prm_urls,
)
from gateway.upstream.oauth_flow import Flow, FlowError, check_issuer
from tests.support.hostile_json import DEEP_SMALL
from tests.unit.upstream.fakes import FakeFetcher

UPSTREAM = "https://up.example.com/tools/mcp"
ISSUER = "https://as.example.com/tenant"


def route(auth: dict[str, Any] | None = None) -> Route:
    config = parse_config(
        {
            "workspaces": {
                "acme": {
                    "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "pw"}]},
                    "servers": {"notes": {"upstream": UPSTREAM, "auth": auth or {"type": "oauth"}}},
                }
            }
        }
    )
    found = RouteTable(config, "https://gw.example.com").get("acme", "notes")
    assert found is not None
    return found


def as_document(**overrides: Any) -> dict[str, Any]:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "registration_endpoint": f"{ISSUER}/register",
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
        "authorization_response_iss_parameter_supported": True,
    }
    document.update(overrides)
    return document


def challenge(resource_metadata: str, scope: str | None = None) -> Any:
    value = f'Bearer error="invalid_token", resource_metadata="{resource_metadata}"'
    if scope:
        value += f', scope="{scope}"'
    return lambda *_: (401, {"error": "invalid_token"}, {"WWW-Authenticate": value})


def test_challenge_params_are_parsed_with_quotes_and_tokens() -> None:
    header = 'Basic realm="x", Bearer resource_metadata="https://r/x", scope="a b", error=invalid_token'
    assert bearer_challenge_params(header) == {
        "resource_metadata": "https://r/x",
        "scope": "a b",
        "error": "invalid_token",
    }
    assert bearer_challenge_params('Basic realm="x"') == {}


def test_well_known_urls_follow_rfc_9728_and_the_mcp_order() -> None:
    assert prm_urls(UPSTREAM) == [
        "https://up.example.com/.well-known/oauth-protected-resource/tools/mcp",
        "https://up.example.com/.well-known/oauth-protected-resource",
    ]
    assert as_metadata_urls(ISSUER) == [
        "https://as.example.com/.well-known/oauth-authorization-server/tenant",
        "https://as.example.com/.well-known/openid-configuration/tenant",
        "https://as.example.com/tenant/.well-known/openid-configuration",
    ]
    assert as_metadata_urls("https://as.example.com") == [
        "https://as.example.com/.well-known/oauth-authorization-server",
        "https://as.example.com/.well-known/openid-configuration",
    ]


def test_discovery_follows_the_challenge_to_prm_and_as_metadata_and_caches() -> None:
    # Given an upstream whose 401 names its PRM, which names an issuer with a path (OIDC form only)
    fetcher = FakeFetcher()
    fetcher.on("POST", UPSTREAM, challenge("https://up.example.com/prm", scope="notes.read"))
    fetcher.on("GET", "https://up.example.com/prm", (200, {"resource": UPSTREAM, "authorization_servers": [ISSUER]}))
    fetcher.on("GET", "https://as.example.com/.well-known/openid-configuration/tenant", (200, as_document()))
    discovery = Discovery(fetcher.as_fetcher())
    # When discovering twice
    found = asyncio.run(discovery.discover(route()))
    again = asyncio.run(discovery.discover(route()))
    # Then the AS is found, the challenge's scope is requested, the resource is the upstream URL, one round of fetches
    assert found is again
    assert found.server.issuer == ISSUER and found.server.iss_parameter_supported
    assert found.scopes == ("notes.read",) and found.resource == UPSTREAM
    assert len(fetcher.calls) == 4  # challenge, PRM, two AS metadata URLs


def test_without_a_challenge_the_well_known_prm_urls_are_tried() -> None:
    fetcher = FakeFetcher()
    fetcher.on(
        "GET",
        "https://up.example.com/.well-known/oauth-protected-resource",
        (
            200,
            {"resource": "https://up.example.com", "authorization_servers": [ISSUER], "scopes_supported": ["mcp"]},
        ),
    )
    fetcher.on("GET", "https://as.example.com/.well-known/oauth-authorization-server/tenant", (200, as_document()))
    found = asyncio.run(Discovery(fetcher.as_fetcher()).discover(route()))
    assert found.scopes == ("mcp",)  # PRM's scopes_supported when the challenge names none


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (as_document(issuer="https://evil.example.com"), "names issuer"),
        (as_document(code_challenge_methods_supported=["plain"]), "S256"),
        (as_document(token_endpoint=None), "token_endpoint"),
    ],
)
def test_unusable_as_metadata_is_refused(document: dict[str, Any], message: str) -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", UPSTREAM, challenge("https://up.example.com/prm"))
    fetcher.on("GET", "https://up.example.com/prm", (200, {"resource": UPSTREAM, "authorization_servers": [ISSUER]}))
    fetcher.on("GET", "https://as.example.com/.well-known/oauth-authorization-server/tenant", (200, document))
    with pytest.raises(DiscoveryError, match=message):
        asyncio.run(Discovery(fetcher.as_fetcher()).discover(route()))


def test_metadata_nested_too_deep_is_not_json() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", UPSTREAM, challenge("https://up.example.com/prm"))
    fetcher.on("GET", "https://up.example.com/prm", (200, DEEP_SMALL))
    with pytest.raises(DiscoveryError, match="not JSON"):
        asyncio.run(Discovery(fetcher.as_fetcher()).discover(route()))


def test_prm_for_another_resource_is_refused() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", UPSTREAM, challenge("https://up.example.com/prm"))
    fetcher.on("GET", "https://up.example.com/prm", (200, {"resource": "https://other.example.com/mcp"}))
    with pytest.raises(DiscoveryError, match="is for"):
        asyncio.run(Discovery(fetcher.as_fetcher()).discover(route()))


def test_the_configured_authorization_server_overrides_discovery() -> None:
    fetcher = FakeFetcher()
    fetcher.on("GET", "https://as.example.com/.well-known/oauth-authorization-server/tenant", (200, as_document()))
    configured = route({"type": "oauth", "authorization_server": ISSUER, "scopes": ["read"]})
    found = asyncio.run(Discovery(fetcher.as_fetcher()).discover(configured))
    assert found.server.issuer == ISSUER and found.scopes == ("read",)
    assert [call[1] for call in fetcher.calls] == [
        "https://as.example.com/.well-known/oauth-authorization-server/tenant"
    ]


QUIRKY_ISSUER = "https://login.as.example.com/tenant/v2.0"  # what the provider calls itself, not where it is found


def _quirky(auth: dict[str, Any]) -> Any:
    fetcher = FakeFetcher()
    fetcher.on("POST", UPSTREAM, challenge("https://up.example.com/prm"))
    fetcher.on("GET", "https://up.example.com/prm", (200, {"resource": UPSTREAM, "authorization_servers": [ISSUER]}))
    document = as_document(issuer=QUIRKY_ISSUER)
    fetcher.on("GET", "https://as.example.com/.well-known/oauth-authorization-server/tenant", (200, document))
    return asyncio.run(Discovery(fetcher.as_fetcher()).discover(route(auth)))


def test_a_provider_that_names_itself_otherwise_is_accepted_only_under_the_configured_issuer() -> None:
    # Given a provider whose metadata, found at ISSUER, names another issuer (issue 24 item 6)
    # Then without an override the metadata is refused, and the message says which setting would accept it
    with pytest.raises(DiscoveryError, match=r"auth\.issuer"):
        _quirky({"type": "oauth"})
    # And an override naming yet another issuer is refused too
    with pytest.raises(DiscoveryError, match="configured issuer"):
        _quirky({"type": "oauth", "issuer": "https://someone-else.example.com"})

    # When the route's config vouches for the issuer the provider uses
    found = _quirky({"type": "oauth", "issuer": QUIRKY_ISSUER})

    # Then discovery succeeds under that issuer, and RFC 9207's iss is compared with it, strictly
    assert found.server.issuer == QUIRKY_ISSUER
    flow = Flow("state", "acme/notes", "alice", "alice", None, QUIRKY_ISSUER, "client", 2000)
    check_issuer(found, flow, QUIRKY_ISSUER)
    for wrong in (ISSUER, QUIRKY_ISSUER + "/", "https://evil.example.com"):
        with pytest.raises(FlowError, match="iss mismatch"):
            check_issuer(found, flow, wrong)
    with pytest.raises(FlowError):
        check_issuer(found, flow, None)  # the server advertises iss: its absence is refused too

"""RFC 7591 registration: what is registered for a client's metadata, and the errors that say what is wrong."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.crypto.hashing import matches_hash
from gateway.oauth.errors import OAuthError
from gateway.oauth.registration_endpoint import (
    IssuedRegistration,
    new_registration,
    parse_registration,
    registration_response,
)
from gateway.routes import Route, RouteTable

NOW = 1_767_225_600
TTL = 30 * 86400


def route(refresh_tokens: bool = True) -> Route:
    config = parse_config(
        {
            "workspaces": {
                "acme": {
                    "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "pw"}]},
                    "servers": {
                        "linear": {
                            "upstream": "https://mcp.linear.app/mcp",
                            "scopes": ["mcp", "read"],
                            "refresh_tokens": refresh_tokens,
                        }
                    },
                }
            }
        }
    )
    found = RouteTable(config, "https://gw.example.com").get("acme", "linear")
    assert found is not None
    return found


def register(metadata: object, at: Route | None = None) -> IssuedRegistration:
    return new_registration(parse_registration(metadata), at or route(), NOW, TTL)


def test_claude_code_like_public_client() -> None:
    # Given a public native client with a loopback redirect
    issued = register(
        {
            "client_name": "Claude Code (linear)",
            "redirect_uris": ["http://localhost:54212/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
    )
    # Then it is registered at this route, with no secret, expiring when unused
    client = issued.client
    assert issued.client_secret is None
    assert client.client_secret_hash is None
    assert client.route_key == "acme/linear"
    assert client.expires_at == NOW + TTL
    assert client.application_type == "native"
    body = registration_response(issued)
    assert body["client_id"] == client.client_id
    assert body["client_id_issued_at"] == NOW
    assert "client_secret" not in body
    assert body["grant_types"] == ["authorization_code", "refresh_token"]


def test_claude_ai_like_confidential_client_gets_a_hashed_secret() -> None:
    issued = register(
        {
            "client_name": "claudeai",
            "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
            "token_endpoint_auth_method": "client_secret_post",
        }
    )
    assert issued.client_secret is not None
    assert issued.client.client_secret_hash is not None
    assert matches_hash(issued.client_secret, issued.client.client_secret_hash)
    body = registration_response(issued)
    assert body["client_secret"] == issued.client_secret
    assert body["client_secret_expires_at"] == 0
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["application_type"] == "web"


def test_omitted_auth_method_registers_a_public_client() -> None:
    # Decision: MCP clients that omit the method are public apps; the response tells compliant clients so.
    issued = register({"redirect_uris": ["http://127.0.0.1/"]})
    assert issued.client.token_endpoint_auth_method == "none"
    assert issued.client_secret is None
    assert registration_response(issued)["client_name"] == "Unnamed client"


def test_every_registration_gets_a_fresh_client_id() -> None:
    metadata = {"redirect_uris": ["http://127.0.0.1/"]}
    assert register(metadata).client.client_id != register(metadata).client.client_id


def test_refresh_token_grant_is_dropped_when_the_route_issues_none() -> None:
    issued = register(
        {"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code", "refresh_token"]},
        route(refresh_tokens=False),
    )
    assert issued.client.grant_types == ("authorization_code",)


def test_extra_grant_types_are_dropped_but_authorization_code_is_required() -> None:
    issued = register({"redirect_uris": ["https://a.example/cb"], "grant_types": ["authorization_code", "implicit"]})
    assert issued.client.grant_types == ("authorization_code",)
    with pytest.raises(OAuthError, match="authorization_code") as raised:
        register({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]})
    assert raised.value.error == "invalid_client_metadata"


def test_response_types_must_include_code() -> None:
    with pytest.raises(OAuthError, match="response_types") as raised:
        register({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]})
    assert raised.value.error == "invalid_client_metadata"


def test_scope_is_narrowed_to_the_route() -> None:
    issued = register({"redirect_uris": ["https://a.example/cb"], "scope": "mcp admin offline_access"})
    assert issued.client.scope == "mcp offline_access"


def test_unsupported_auth_method_is_named() -> None:
    with pytest.raises(OAuthError, match="private_key_jwt") as raised:
        register({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"})
    assert raised.value.error == "invalid_client_metadata"
    assert raised.value.status_code == 400


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, "redirect_uris is required"),
        ({"redirect_uris": []}, "redirect_uris is required"),
        ({"redirect_uris": "https://a.example/cb"}, "redirect_uris"),
        ({"redirect_uris": ["http://evil.example/cb"]}, "http://evil.example/cb"),
        ({"redirect_uris": ["https://a.example/cb#x"]}, "fragment"),
    ],
)
def test_redirect_problems_are_invalid_redirect_uri(metadata: dict[str, Any], expected: str) -> None:
    with pytest.raises(OAuthError, match=expected) as raised:
        register(metadata)
    assert raised.value.error == "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ([], "JSON object"),
        ({"redirect_uris": ["https://a.example/cb"], "client_name": 42}, "client_name"),
        ({"redirect_uris": ["https://a.example/cb"], "client_name": "a\x00b"}, "control characters"),
        ({"redirect_uris": ["https://a.example/cb"], "client_name": "x" * 201}, "client_name"),
    ],
)
def test_metadata_problems_are_invalid_client_metadata(metadata: object, expected: str) -> None:
    with pytest.raises(OAuthError, match=expected) as raised:
        register(metadata)
    assert raised.value.error == "invalid_client_metadata"


def test_unknown_fields_are_ignored_and_non_https_logo_dropped() -> None:
    issued = register(
        {
            "redirect_uris": ["cursor://anysphere.cursor-mcp/oauth/callback"],
            "application_type": "web",
            "logo_uri": "http://tracker.example/logo.png",
            "client_uri": "https://cursor.com",
            "jwks": {"keys": []},
            "x-vendor": True,
        }
    )
    body = registration_response(issued)
    assert "logo_uri" not in body
    assert body["client_uri"] == "https://cursor.com"
    assert body["application_type"] == "web"
    assert "x-vendor" not in body


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "redirect_uris",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "client_name",
        "client_uri",
        "logo_uri",
        "scope",
        "software_id",
        "application_type",
    ]
)


@settings(max_examples=300)
@given(st.one_of(JSON, st.dictionaries(FIELDS, JSON, max_size=6)))
def test_random_json_yields_a_registration_or_an_oauth_error(data: object) -> None:
    error: str | None
    try:
        issued = register(data)
    except OAuthError as problem:
        error = problem.error
    else:
        registration_response(issued)
        error = None
    assert error in (None, "invalid_client_metadata", "invalid_redirect_uri")


@given(st.lists(st.text(max_size=60), min_size=1, max_size=3), st.text(max_size=60))
def test_random_strings_in_metadata_never_crash(uris: list[str], name: str) -> None:
    with contextlib.suppress(OAuthError):
        register({"redirect_uris": uris, "client_name": name})


def test_lone_surrogates_are_refused_not_stored() -> None:
    # Given JSON that decoded to a string that cannot be encoded as UTF-8
    with pytest.raises(OAuthError, match="client_name") as raised:
        register({"redirect_uris": ["https://a.example/cb"], "client_name": "\ud800"})
    assert raised.value.error == "invalid_client_metadata"


def test_bidi_overrides_and_zero_width_characters_are_dropped_from_the_stored_name() -> None:
    # Given a client name that displays as "EvilClaude Code" (U+202E reverses what follows) with a zero-width space
    issued = register({"redirect_uris": ["https://a.example/cb"], "client_name": "Evil\u202eedoC edualC\u200b"})
    # Then the registered name is what a reader would see without the tricks
    assert issued.client.client_name == "EviledoC edualC"
    assert registration_response(issued)["client_name"] == "EviledoC edualC"

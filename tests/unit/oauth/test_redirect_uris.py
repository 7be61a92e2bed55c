"""Which redirect URIs clients may register, and how a requested one is matched."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.redirect_uris import (
    InvalidRedirectUri,
    browser_destination,
    redirect_uri_matches,
    validate_redirect_uri,
)


@pytest.mark.parametrize(
    "uri",
    [
        "https://claude.ai/api/mcp/auth_callback",
        "https://vscode.dev/redirect",
        "http://127.0.0.1/",
        "http://127.0.0.1:33418/callback",
        "http://[::1]:8080/cb",
        "http://localhost:54212/callback",
        "cursor://anysphere.cursor-mcp/oauth/callback",
        "com.example.app:/oauth2redirect",
        "https://example.com/cb?tenant=a",
    ],
)
def test_clients_can_register_real_world_redirects(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://app.example.com/callback", "plain http on a non-loopback host"),
        ("http://127.0.0.2.nip.io/cb", "plain http"),
        ("https://example.com/cb#frag", "fragment"),
        ("javascript:alert(1)", "not allowed"),
        ("data:text/html,hi", "not allowed"),
        ("file:///etc/passwd", "not allowed"),
        ("/callback", "not an absolute URI"),
        ("https:///cb", "no host"),
        ("https://user@example.com/cb", "user information"),
        ("https://example.com/c b", "whitespace"),
        ("http://[::1/cb", "malformed"),
        ("http://127.0.0.1:99999/cb", "malformed"),
        ("myapp:", "nothing after its scheme"),
        ("", "non-empty"),
    ],
)
def test_unsafe_redirects_are_refused_with_a_reason(uri: str, reason: str) -> None:
    with pytest.raises(InvalidRedirectUri, match=reason):
        validate_redirect_uri(uri)


def test_exact_match() -> None:
    assert redirect_uri_matches(["https://claude.ai/api/mcp/auth_callback"], "https://claude.ai/api/mcp/auth_callback")
    assert not redirect_uri_matches(["https://claude.ai/api/mcp/auth_callback"], "https://claude.ai/api/mcp/auth")
    assert not redirect_uri_matches(["https://claude.ai/cb"], "https://claude.ai/cb/")
    assert not redirect_uri_matches(["https://claude.ai/cb"], "https://claude.ai:8443/cb")


def test_vscode_loopback_registration_matches_any_port() -> None:
    # Given VS Code's registration of http://127.0.0.1/ (RFC 8252 §7.3)
    registered = ["https://vscode.dev/redirect", "http://127.0.0.1/"]
    # Then its ephemeral-port callback matches, with or without the trailing slash
    assert redirect_uri_matches(registered, "http://127.0.0.1:33418/")
    assert redirect_uri_matches(registered, "http://127.0.0.1:33418")
    # But not another path, host or scheme
    assert not redirect_uri_matches(registered, "http://127.0.0.1:33418/other")
    assert not redirect_uri_matches(registered, "http://localhost:33418/")
    assert not redirect_uri_matches(registered, "https://127.0.0.1:33418/")


def test_loopback_port_is_ignored_but_path_and_query_are_not() -> None:
    registered = ["http://localhost:5000/callback?x=1"]
    assert redirect_uri_matches(registered, "http://localhost:6000/callback?x=1")
    assert not redirect_uri_matches(registered, "http://localhost:6000/callback?x=2")
    assert not redirect_uri_matches(registered, "http://localhost:6000/callback?x=1#f")


def test_non_loopback_registrations_never_match_on_other_ports() -> None:
    assert not redirect_uri_matches(["https://example.com/cb"], "https://example.com:444/cb")
    assert not redirect_uri_matches(["cursor://anysphere.cursor-mcp/cb"], "cursor://anysphere.cursor-mcp:1/cb")


@given(st.text(max_size=300))
def test_validator_only_ever_raises_its_own_error(uri: str) -> None:
    with contextlib.suppress(InvalidRedirectUri):
        validate_redirect_uri(uri)


@given(st.lists(st.text(max_size=80), max_size=4), st.text(max_size=80))
def test_matcher_never_raises(registered: list[str], requested: str) -> None:
    redirect_uri_matches(registered, requested)


@given(
    st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
    st.integers(1, 65535),
    st.integers(1, 65535),
    st.from_regex(r"\A(/[a-z0-9]{0,8}){0,3}\Z"),
)
def test_a_registered_loopback_uri_matches_itself_on_any_port(host: str, port: int, other: int, path: str) -> None:
    # Given a valid loopback registration
    registered = validate_redirect_uri(f"http://{host}:{port}{path}")
    # Then the same URI on any other port matches
    assert redirect_uri_matches([registered], f"http://{host}:{other}{path}")


@pytest.mark.parametrize(
    ("uri", "opens"),
    [
        ("microsoft-edge:https://evil.example/cb", "evil.example"),
        ("microsoft-edge:http://evil.example/cb", "evil.example"),
        ("x-safari-https://evil.example/cb", "evil.example"),
        ("googlechromes://evil.example/cb", "evil.example"),
        ("com.example.app:/open?url=https://evil.example/x", "evil.example"),
        ("cursor://anysphere.cursor-mcp/oauth/callback", None),
        ("com.example.app:/callback", None),
        ("https://claude.ai/api/mcp/auth_callback", None),
        ("http://127.0.0.1:33418/callback", None),
    ],
)
def test_schemes_that_open_a_browser_or_another_app_are_recognised(uri: str, opens: str | None) -> None:
    assert browser_destination(uri) == opens

"""The gateway as an OAuth client upstream: the authorization request, the flow cookie, code exchange, refresh."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.crypto.pkce import s256
from gateway.upstream import oauth_flow
from gateway.upstream.metadata_discovery import AuthorizationServer, UpstreamAuthorization
from gateway.upstream.oauth_flow import FlowError, TokenEndpointError
from gateway.upstream.token_set import TokenSet, UpstreamClient
from tests.support.hostile_json import DEEP_SMALL
from tests.unit.upstream.fakes import CLIENT, FakeFetcher, token_set

SECRET = b"s" * 32
SERVER = AuthorizationServer(
    issuer="https://as.example.com",
    authorization_endpoint="https://as.example.com/authorize?tenant=1",
    token_endpoint="https://as.example.com/token",
    registration_endpoint=None,
    client_id_metadata_document_supported=False,
    token_endpoint_auth_methods=("client_secret_basic",),
    scopes_supported=(),
    iss_parameter_supported=True,
)
UPSTREAM = UpstreamAuthorization("https://up.example.com/mcp", SERVER, ("mcp", "offline_access"))
CALLBACK = "https://gw.example.com/acme/notes/connect/callback"


def start(now: int = 1000) -> oauth_flow.StartedFlow:
    return oauth_flow.start_flow(
        upstream=UPSTREAM,
        client=CLIENT,
        redirect_uri=CALLBACK,
        route_key="acme/notes",
        subject="alice",
        user_id="alice",
        pending_id="pending-1",
        secret=SECRET,
        secure_cookie=True,
        now=now,
    )


def test_the_authorization_request_carries_pkce_s256_resource_and_an_opaque_state() -> None:
    started = start()
    url = urlsplit(started.authorization_url)
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert query["tenant"] == "1"  # the endpoint's own query is kept (RFC 6749 §3.1)
    assert query["resource"] == "https://up.example.com/mcp"  # RFC 8707 §2.1
    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == s256(oauth_flow.code_verifier(query["state"], SECRET))
    assert query["scope"] == "mcp offline_access" and query["redirect_uri"] == CALLBACK
    assert "alice" not in started.authorization_url  # who it is for travels in the cookie only
    assert started.cookie_name.startswith("__Host-")


def test_the_flow_is_read_back_only_with_its_cookie() -> None:
    started = start()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    flow = oauth_flow.read_flow(
        state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1001
    )
    assert (flow.route_key, flow.subject, flow.pending_id, flow.issuer) == (
        "acme/notes",
        "alice",
        "pending-1",
        SERVER.issuer,
    )
    with pytest.raises(FlowError, match="another browser"):
        oauth_flow.read_flow(state, {}, secret=SECRET, secure_cookie=True, now=1001)
    with pytest.raises(FlowError, match="not valid"):
        oauth_flow.read_flow(
            state, {started.cookie_name: "x" + started.cookie_value}, secret=SECRET, secure_cookie=True, now=1001
        )
    with pytest.raises(FlowError, match="too long"):
        oauth_flow.read_flow(
            state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1000 + 901
        )


def test_iss_must_match_when_the_server_advertises_it() -> None:
    started = start()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    flow = oauth_flow.read_flow(
        state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1000
    )
    oauth_flow.check_issuer(UPSTREAM, flow, "https://as.example.com")
    with pytest.raises(FlowError, match="iss mismatch"):
        oauth_flow.check_issuer(UPSTREAM, flow, "https://evil.example.com")
    with pytest.raises(FlowError, match="iss missing"):
        oauth_flow.check_issuer(UPSTREAM, flow, None)


def test_iss_is_compared_whenever_present_even_if_not_advertised() -> None:
    # Given a server that does not advertise RFC 9207 support
    quiet = dataclasses.replace(UPSTREAM, server=dataclasses.replace(SERVER, iss_parameter_supported=False))
    started = start()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    flow = oauth_flow.read_flow(
        state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1000
    )
    # Then an answer without iss is accepted, and one naming another server is refused
    oauth_flow.check_issuer(quiet, flow, None)
    with pytest.raises(FlowError, match="iss mismatch"):
        oauth_flow.check_issuer(quiet, flow, "https://evil.example.com")


def test_the_code_exchange_sends_the_verifier_resource_and_basic_client_auth() -> None:
    fetcher = FakeFetcher()
    seen: dict[str, Any] = {}

    def token(_m: str, _u: str, headers: Any, body: bytes | None) -> tuple[int, Any, dict[str, str]]:
        seen["headers"], seen["form"] = dict(headers), parse_qs((body or b"").decode())
        return (
            200,
            {"access_token": "AT-secret", "token_type": "bearer", "expires_in": 60, "refresh_token": "RT-secret"},
            {},
        )

    fetcher.on("POST", SERVER.token_endpoint, token)
    started = start()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    flow = oauth_flow.read_flow(
        state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1000
    )
    tokens = asyncio.run(
        oauth_flow.exchange_code(
            fetcher.as_fetcher(),
            upstream=UPSTREAM,
            client=CLIENT,
            code="c0de",
            flow=flow,
            redirect_uri=CALLBACK,
            secret=SECRET,
            clock=lambda: 5000,
        )
    )
    assert seen["form"]["code_verifier"] == [oauth_flow.code_verifier(state, SECRET)]
    assert seen["form"]["resource"] == ["https://up.example.com/mcp"]
    # client_id in the body as well as in the Basic header (RFC 6749 §3.2.1): some servers look only there
    assert seen["form"]["client_id"] == ["gw-client"] and "client_secret" not in seen["form"]
    assert seen["headers"]["Authorization"] == "Basic " + base64.b64encode(b"gw-client:gw-secret").decode()
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at) == ("AT-secret", "RT-secret", 5060)
    assert "secret" not in repr(tokens)


def test_a_refresh_without_a_new_refresh_token_keeps_the_old_one() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", "https://as.example.com/token", (200, {"access_token": "access-2", "expires_in": 60}))
    refreshed = asyncio.run(oauth_flow.refresh(fetcher.as_fetcher(), token_set(), clock=lambda: 9000))
    assert (refreshed.access_token, refreshed.refresh_token, refreshed.expires_at) == ("access-2", "refresh-1", 9060)
    form = parse_qs((fetcher.calls[0][3] or b"").decode())
    assert form["grant_type"] == ["refresh_token"] and form["resource"] == ["https://upstream.example.com/mcp"]


def test_a_token_answer_nested_too_deep_is_a_token_endpoint_error() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", "https://as.example.com/token", (200, DEEP_SMALL))
    with pytest.raises(TokenEndpointError, match="without a JSON object"):
        asyncio.run(oauth_flow.refresh(fetcher.as_fetcher(), token_set()))


def test_refresh_errors_say_whether_the_user_must_reconnect() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", "https://as.example.com/token", (400, {"error": "invalid_grant"}))
    with pytest.raises(TokenEndpointError) as refused:
        asyncio.run(oauth_flow.refresh(fetcher.as_fetcher(), token_set()))
    assert refused.value.needs_reconnect
    with pytest.raises(TokenEndpointError) as unreachable:
        asyncio.run(oauth_flow.refresh(FakeFetcher().as_fetcher(), token_set()))
    assert not unreachable.value.needs_reconnect
    with pytest.raises(TokenEndpointError) as no_refresh:
        asyncio.run(oauth_flow.refresh(fetcher.as_fetcher(), token_set(refresh=None)))
    assert no_refresh.value.needs_reconnect


# --- servers that refuse the client authentication they were offered (issue 24 item 7) --------------------------


def _exchange(fetcher: FakeFetcher, client: UpstreamClient = CLIENT) -> TokenSet:
    started = start()
    state = parse_qs(urlsplit(started.authorization_url).query)["state"][0]
    flow = oauth_flow.read_flow(
        state, {started.cookie_name: started.cookie_value}, secret=SECRET, secure_cookie=True, now=1000
    )
    return asyncio.run(
        oauth_flow.exchange_code(
            fetcher.as_fetcher(),
            upstream=UPSTREAM,
            client=client,
            code="c0de",
            flow=flow,
            redirect_uri=CALLBACK,
            secret=SECRET,
            clock=lambda: 5000,
        )
    )


def _accepts_only_the_body(_m: str, _u: str, headers: Any, body: bytes | None) -> tuple[int, Any, dict[str, str]]:
    """A token endpoint that reads the client secret from the body only (client_secret_post)."""
    form = parse_qs((body or b"").decode())
    if "Authorization" in headers or form.get("client_secret") != ["gw-secret"]:
        return 401, {"error": "invalid_client", "error_description": "Client secret is required"}, {}
    return 200, {"access_token": "AT", "expires_in": 60, "refresh_token": "RT"}, {}


def test_a_server_that_refuses_basic_is_asked_once_more_with_the_secret_in_the_body() -> None:
    # Given a token endpoint that answers invalid_client to Basic authentication
    fetcher = FakeFetcher()
    fetcher.on("POST", SERVER.token_endpoint, _accepts_only_the_body)
    # When the gateway exchanges a code as a client_secret_basic client
    tokens = _exchange(fetcher)
    # Then it retried once with client_secret_post, and the token set remembers the method that worked
    assert [("Authorization" in headers) for _m, _u, headers, _b in fetcher.calls] == [True, False]
    assert tokens.access_token == "AT" and tokens.client.auth_method == "client_secret_post"
    # And a refresh of that set goes straight to the method that worked
    fetcher.calls.clear()
    refreshed = asyncio.run(oauth_flow.refresh(fetcher.as_fetcher(), tokens, clock=lambda: 6000))
    assert len(fetcher.calls) == 1 and refreshed.client.auth_method == "client_secret_post"


def test_a_client_refused_both_ways_is_an_error_after_one_retry() -> None:
    fetcher = FakeFetcher()
    fetcher.on("POST", SERVER.token_endpoint, (401, {"error": "invalid_client"}))
    with pytest.raises(TokenEndpointError) as refused:
        _exchange(fetcher)
    assert refused.value.error == "invalid_client" and len(fetcher.calls) == 2
    # other errors, and public clients, are not retried
    fetcher.calls.clear()
    fetcher.on("POST", SERVER.token_endpoint, (400, {"error": "invalid_grant"}))
    with pytest.raises(TokenEndpointError):
        _exchange(fetcher)
    fetcher.on("POST", SERVER.token_endpoint, (401, {"error": "invalid_client"}))
    with pytest.raises(TokenEndpointError):
        _exchange(fetcher, UpstreamClient("public", None, "none", "cimd"))
    assert len(fetcher.calls) == 2


def test_revocation_sends_the_refresh_token_with_the_client_authentication() -> None:
    # Given a token set from a server with a revocation endpoint (RFC 7009)
    fetcher = FakeFetcher()
    fetcher.on("POST", "https://as.example.com/revoke", _revoked_only_with_the_body)
    tokens = dataclasses.replace(token_set(), revocation_endpoint="https://as.example.com/revoke")
    # When it is revoked
    assert asyncio.run(oauth_flow.revoke(fetcher.as_fetcher(), tokens)) is True
    # Then the refresh token was sent with its hint, and the Basic attempt the server refused was retried in the body
    forms = [parse_qs((body or b"").decode()) for _m, _u, _h, body in fetcher.calls]
    assert len(forms) == 2 and forms[1]["token"] == ["refresh-1"] and forms[1]["token_type_hint"] == ["refresh_token"]
    # And a server without a revocation endpoint is not asked
    assert asyncio.run(oauth_flow.revoke(fetcher.as_fetcher(), token_set())) is False


def _revoked_only_with_the_body(_m: str, _u: str, headers: Any, body: bytes | None) -> tuple[int, Any, dict[str, str]]:
    if "Authorization" in headers:  # as the mcp SDK's revocation endpoint answers a client it cannot authenticate
        return 401, {"error": "unauthorized_client"}, {}
    return 200, b"", {}

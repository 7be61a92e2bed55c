"""Revocation bites on the next request, on a warm proxy with the deployment's default settings: a client that
revokes its access token at /revoke, or whose code is replayed (RFC 6749 §4.1.2), cannot go on calling /mcp with
the tokens it had. The token and proxy functions run as ``make invoke`` runs them (simulated Lambda containers),
against moto over HTTP and the demo upstream; the proxy container is warm and has served the token before.
"""

from __future__ import annotations

import json

import pytest

from infra.invoke import warm_runtime
from tests.support.invoke_flows import (
    CLIENT_ID,
    form_event,
    issued_tokens,
    mcp_call,
    token_exchange,
    with_default_settings,
)


@pytest.fixture
def default_settings(gateway_env: dict[str, str]) -> dict[str, str]:
    """The functions' environment as the template's defaults set it (no grant-status cache opted into)."""
    return with_default_settings(gateway_env)


def test_an_access_token_revoked_at_revoke_is_refused_on_its_next_call(default_settings: dict[str, str]) -> None:
    # Given an access token that a warm proxy has just served (its grant status seen as active)
    tokens, _ = issued_tokens()
    assert mcp_call(tokens["access_token"]) == 200
    assert mcp_call(tokens["access_token"]) == 200

    # When the client revokes that access token (RFC 7009)
    revoke = form_event(
        "revoke-refresh-token.json",
        {"token": tokens["access_token"], "token_type_hint": "access_token", "client_id": CLIENT_ID},
    )
    assert token_exchange(revoke)["statusCode"] == 200

    # Then its very next call is refused, and so is its refresh token
    assert mcp_call(tokens["access_token"]) == 401
    refresh = form_event(
        "token-refresh.json",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID},
    )
    refused = token_exchange(refresh)
    assert refused["statusCode"] == 400
    assert json.loads(refused["body"])["error"] == "invalid_grant"


def test_a_replayed_code_stops_the_access_token_issued_for_it(default_settings: dict[str, str]) -> None:
    # Given a code exchanged once, whose access token a warm proxy serves
    tokens, exchange = issued_tokens()
    assert mcp_call(tokens["access_token"]) == 200

    # When the same code is presented again (an attacker who intercepted it, RFC 6749 §4.1.2)
    replay = token_exchange(exchange)
    assert replay["statusCode"] == 400
    assert json.loads(replay["body"])["error"] == "invalid_grant"

    # Then the access token from the first exchange stops working at once, as does its refresh token
    assert mcp_call(tokens["access_token"]) == 401
    refresh = form_event(
        "token-refresh.json",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID},
    )
    assert token_exchange(refresh)["statusCode"] == 400


def test_a_revoked_grant_is_refused_on_the_next_call_without_a_cache_opt_in(default_settings: dict[str, str]) -> None:
    # Given a warm proxy serving a grant-backed token
    tokens, _ = issued_tokens()
    assert mcp_call(tokens["access_token"]) == 200
    runtime = warm_runtime("proxy")
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = runtime.access_tokens.verify(tokens["access_token"], route=route).grant_id

    # When an administrator revokes the grant in the table
    runtime.grants.revoke_grant(grant_id, runtime.now(), "admin")

    # Then the next call is refused
    assert mcp_call(tokens["access_token"]) == 401

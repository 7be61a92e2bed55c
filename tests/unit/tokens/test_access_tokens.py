"""Access tokens (RFC 9068): audience-bound, verified locally, rejected with a reason when anything is off."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from gateway.config import parse_config
from gateway.routes import Route, RouteTable
from gateway.tokens.access_token import AccessTokens, InvalidAccessToken
from gateway.tokens.keys import jwks, thumbprint
from infra.memory.keys import LocalRsaKey
from tests.support.runtime import example_config_data


def _routes() -> tuple[Route, Route]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["other"] = {"upstream": "http://127.0.0.1:9/mcp"}
    table = RouteTable(parse_config(data), "https://gw.example.com")
    echo, other = table.get("demo", "echo"), table.get("demo", "other")
    assert echo is not None and other is not None
    return echo, other


def _issue(tokens: AccessTokens, route: Route, **overrides: object) -> str:
    args: dict[str, object] = {
        "route": route, "subject": "alice", "client_id": "c1", "scopes": ["mcp"], "grant_id": "g1",
    }  # fmt: skip
    args.update(overrides)
    return tokens.issue(**args)  # type: ignore[arg-type]


def _header(token: str) -> dict[str, str]:
    segment = token.split(".")[0]
    header: dict[str, str] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return header


def test_an_issued_token_verifies_with_its_claims() -> None:
    key = LocalRsaKey()
    tokens = AccessTokens(key, key, 3600)
    echo, _ = _routes()
    token = _issue(tokens, echo)
    claims = tokens.verify(token, route=echo)
    assert (claims.subject, claims.client_id, claims.scopes, claims.grant_id) == ("alice", "c1", ("mcp",), "g1")
    assert claims.audience == "https://gw.example.com/demo/echo/mcp"
    assert claims.expires_at - claims.issued_at == 3600
    assert _header(token) == {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
    assert key.sign_calls == 1


def test_a_token_for_another_route_is_rejected() -> None:
    key = LocalRsaKey()
    tokens = AccessTokens(key, key, 3600)
    echo, other = _routes()
    with pytest.raises(InvalidAccessToken, match="another resource"):
        tokens.verify(_issue(tokens, echo), route=other)


def test_expired_forged_and_malformed_tokens_are_rejected() -> None:
    key, attacker = LocalRsaKey(), LocalRsaKey()
    tokens = AccessTokens(key, key, 3600)
    echo, _ = _routes()
    with pytest.raises(InvalidAccessToken, match="expired"):
        tokens.verify(_issue(tokens, echo, lifetime_seconds=-120), route=echo)
    forged = AccessTokens(attacker, attacker, 3600)
    with pytest.raises(InvalidAccessToken, match="unknown key"):
        tokens.verify(_issue(forged, echo), route=echo)
    with pytest.raises(InvalidAccessToken, match="malformed"):
        tokens.verify("not-a-jwt", route=echo)


def test_a_token_signed_by_the_right_key_but_not_an_access_token_is_rejected() -> None:
    # Given an ID-token-like JWT (typ JWT) signed by the gateway's key
    key = LocalRsaKey()
    tokens = AccessTokens(key, key, 3600)
    echo, _ = _routes()
    good = _issue(tokens, echo)
    _header_segment, payload, _sig = good.split(".")
    other_header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "JWT", "kid": key.kid}).encode()).rstrip(
        b"="
    )
    signing_input = other_header + b"." + payload.encode()
    token = (signing_input + b"." + base64.urlsafe_b64encode(key.sign(signing_input)).rstrip(b"=")).decode()
    # Then it is refused: RFC 9068 §4 requires checking typ
    with pytest.raises(InvalidAccessToken, match="not an access token"):
        tokens.verify(token, route=echo)


def test_alg_none_is_never_accepted() -> None:
    key = LocalRsaKey()
    tokens = AccessTokens(key, key, 3600)
    echo, _ = _routes()
    claims = jwt.decode(_issue(tokens, echo), options={"verify_signature": False})
    unsigned = jwt.encode(claims, key="", algorithm="none", headers={"typ": "at+jwt", "kid": key.kid})
    with pytest.raises(InvalidAccessToken):
        tokens.verify(unsigned, route=echo)


def test_the_jwks_publishes_each_key_under_its_thumbprint() -> None:
    first, second = LocalRsaKey(), LocalRsaKey()
    document = jwks({**first.public_keys(), **second.public_keys()})
    kids = [jwk["kid"] for jwk in document["keys"]]
    assert kids == [first.kid, second.kid]
    assert all(jwk["kid"] == thumbprint(jwk) and jwk["alg"] == "RS256" for jwk in document["keys"])

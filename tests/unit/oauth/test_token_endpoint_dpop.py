"""DPoP at the token endpoint (RFC 9449 §5, §8), over HTTP with an in-memory runtime: a proof binds the access token
(``cnf.jkt``, ``token_type: DPoP``) and a public client's refresh token; a refresh with another key or none fails;
clients and workspaces that require proofs get ``invalid_dpop_proof`` without one; nonces; replayed, stale and
misdirected proofs. Also issue "Every client" item 5: a refresh keeps the grant's scope, and a workspace's own
access-token lifetime."""

from __future__ import annotations

import dataclasses
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.crypto import pkce
from gateway.crypto.hashing import hash_secret
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import new_code
from gateway.routes import Route
from gateway.runtime import Runtime
from gateway.storage.records import RegisteredClient
from gateway.web.token.app import create_app
from tests.support.jose_keys import SigningKey, dpop_proof, thumbprint
from tests.support.runtime import BASE_URL, example_config_data, memory_runtime

TOKEN = "/demo/echo/token"
TOKEN_URL = f"{BASE_URL}{TOKEN}"
PUBLIC, CONFIDENTIAL, BOUND, SECRET = "public-client", "confidential-client", "bound-client", "s3cret"
REDIRECT = "http://127.0.0.1:40000/callback"
VERIFIER = "v" * 50


def runtime_with(**workspace: Any) -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"].update(workspace)
    runtime = memory_runtime(parse_config(data))
    now = runtime.now()
    for client_id, secret_hash, bound in [(PUBLIC, None, False), (CONFIDENTIAL, hash_secret(SECRET), False),
                                          (BOUND, None, True)]:  # fmt: skip
        runtime.clients.create(RegisteredClient(
            client_id=client_id, route_key="demo/echo", client_name=client_id, redirect_uris=(REDIRECT,),
            token_endpoint_auth_method="client_secret_basic" if secret_hash else "none",
            client_secret_hash=secret_hash, created_at=now, last_used_at=now, expires_at=now + 86400,
            dpop_bound_access_tokens=bound, scope=None,
        ))  # fmt: skip
    return runtime


@pytest.fixture
def runtime() -> Runtime:
    return runtime_with()


def http(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


def code_for(runtime: Runtime, client_id: str, scopes: tuple[str, ...] = ("mcp",)) -> str:
    now = runtime.now()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    issued = new_code(
        route=route, client_id=client_id, redirect_uri=REDIRECT, code_challenge=pkce.s256(VERIFIER), scopes=scopes,
        user=SignedInUser("alice", "Alice"), signed_in_at=now, now=now, lifetime_seconds=300,
    )  # fmt: skip
    runtime.grants.put_code(issued.record)
    return issued.value


def exchange(
    client: TestClient, runtime: Runtime, client_id: str, proof: str | None, auth: Any = None, **extra: str
) -> Any:
    form = {"grant_type": "authorization_code", "code": code_for(runtime, client_id), "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, "client_id": client_id, **extra}  # fmt: skip
    return client.post(TOKEN, data=form, headers={"DPoP": proof} if proof else {}, auth=auth)


def refresh(client: TestClient, token: str, client_id: str, proof: str | None, auth: Any = None) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return client.post(TOKEN, data=form, headers={"DPoP": proof} if proof else {}, auth=auth)


def test_a_proof_binds_the_access_token_and_a_public_clients_refresh_token(runtime: Runtime) -> None:
    client, key = http(runtime), SigningKey()
    # Given a public client's code exchange with a DPoP proof
    response = exchange(client, runtime, PUBLIC, dpop_proof(key, "POST", TOKEN_URL, runtime.now()))

    # Then the access token is a DPoP token bound to the key (RFC 9449 §5.1, §6.1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    claims = runtime.access_tokens.verify(body["access_token"], route=echo(runtime))
    assert claims.jkt == thumbprint(key)

    # And the refresh token works only with a proof of the same key
    other = refresh(client, body["refresh_token"], PUBLIC, dpop_proof(SigningKey(), "POST", TOKEN_URL, runtime.now()))
    assert other.status_code == 400 and "bound to a DPoP key" in other.json()["error_description"]
    without = refresh(client, body["refresh_token"], PUBLIC, None)
    assert without.status_code == 400 and without.json()["error"] == "invalid_grant"
    same = refresh(client, body["refresh_token"], PUBLIC, dpop_proof(key, "POST", TOKEN_URL, runtime.now()))
    assert same.status_code == 200 and same.json()["token_type"] == "DPoP", same.text


def test_a_confidential_clients_refresh_token_is_bound_to_its_authentication_not_a_key(runtime: Runtime) -> None:
    client, key, other = http(runtime), SigningKey(), SigningKey()
    first = exchange(client, runtime, CONFIDENTIAL, dpop_proof(key, "POST", TOKEN_URL, runtime.now()),
                     auth=(CONFIDENTIAL, SECRET)).json()  # fmt: skip
    refreshed = refresh(client, first["refresh_token"], CONFIDENTIAL,
                        dpop_proof(other, "POST", TOKEN_URL, runtime.now()), auth=(CONFIDENTIAL, SECRET))  # fmt: skip
    assert refreshed.status_code == 200, refreshed.text
    claims = runtime.access_tokens.verify(refreshed.json()["access_token"], route=echo(runtime))
    assert claims.jkt == thumbprint(other)  # the new access token is bound to the new key


def test_without_a_proof_tokens_stay_bearer(runtime: Runtime) -> None:
    body = exchange(http(runtime), runtime, PUBLIC, None).json()
    assert body["token_type"] == "Bearer"
    claims = runtime.access_tokens.verify(body["access_token"], route=echo(runtime))
    assert claims.jkt is None


def test_a_client_registered_dpop_bound_and_a_workspace_requiring_dpop_need_a_proof() -> None:
    runtime = runtime_with()
    refused = exchange(http(runtime), runtime, BOUND, None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"

    strict = runtime_with(dpop={"required": True})
    refused = exchange(http(strict), strict, PUBLIC, None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"
    accepted = exchange(http(strict), strict, PUBLIC, dpop_proof(SigningKey(), "POST", TOKEN_URL, strict.now()))
    assert accepted.status_code == 200 and accepted.json()["token_type"] == "DPoP"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda key, now: dpop_proof(key, "GET", TOKEN_URL, now), "another method"),
        (lambda key, now: dpop_proof(key, "POST", f"{BASE_URL}/demo/toolbox/token", now), "another URL"),
        (lambda key, now: dpop_proof(key, "POST", TOKEN_URL, now - 3600), "outside the accepted window"),
        (lambda key, now: dpop_proof(key, "POST", TOKEN_URL, now + 3600), "outside the accepted window"),
        (lambda key, now: dpop_proof(key, "POST", TOKEN_URL, now, jti=None), "'jti'"),
        (
            lambda key, now: jwt.encode(
                {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": now},
                "s" * 32,
                algorithm="HS256",
                headers={"typ": "dpop+jwt"},
            ),
            "not accepted",
        ),
        (
            lambda key, now: key.sign({"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": now}, typ="dpop+jwt"),
            "must carry the public key",
        ),
        (lambda key, now: "not a proof", "three base64url parts"),
    ],
    ids=["method", "url", "stale", "future", "no-jti", "hmac", "no-jwk", "garbage"],
)
def test_a_broken_proof_is_invalid_dpop_proof_with_the_reason(runtime: Runtime, make: Any, reason: str) -> None:
    response = exchange(http(runtime), runtime, PUBLIC, make(SigningKey(), runtime.now()))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_dpop_proof" and reason in response.json()["error_description"]


def test_a_proof_is_single_use_and_two_dpop_headers_are_refused(runtime: Runtime) -> None:
    client, key = http(runtime), SigningKey()
    proof = dpop_proof(key, "POST", TOKEN_URL, runtime.now())
    assert exchange(client, runtime, PUBLIC, proof).status_code == 200
    replay = exchange(client, runtime, PUBLIC, proof)
    assert replay.status_code == 400 and "already used" in replay.json()["error_description"]
    form = {"grant_type": "authorization_code", "code": code_for(runtime, PUBLIC), "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, "client_id": PUBLIC}  # fmt: skip
    two = client.post(
        TOKEN,
        data=form,
        headers=[
            ("DPoP", dpop_proof(key, "POST", TOKEN_URL, runtime.now())),
            ("DPoP", dpop_proof(key, "POST", TOKEN_URL, runtime.now())),
        ],
    )
    assert two.status_code == 400 and "exactly one DPoP header" in two.json()["error_description"]


def test_a_workspace_with_nonces_asks_for_one_and_accepts_it() -> None:
    runtime = runtime_with(dpop={"nonce": True})
    client, key = http(runtime), SigningKey()
    # When a client sends a proof without a nonce
    first = exchange(client, runtime, PUBLIC, dpop_proof(key, "POST", TOKEN_URL, runtime.now()))
    # Then it is told to use the server's nonce (RFC 9449 §8), which comes in DPoP-Nonce
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    # And a proof with it is accepted; the answer carries the nonce to use next
    second = exchange(client, runtime, PUBLIC, dpop_proof(key, "POST", TOKEN_URL, runtime.now(), nonce=nonce))
    assert second.status_code == 200, second.text
    assert second.headers["dpop-nonce"]
    forged = exchange(client, runtime, PUBLIC, dpop_proof(key, "POST", TOKEN_URL, runtime.now(), nonce="AAAA" * 8))
    assert forged.status_code == 400 and forged.json()["error"] == "use_dpop_nonce"


def test_the_root_alias_of_the_default_route_is_a_valid_htu(runtime: Runtime) -> None:
    response = exchange(http(runtime), runtime, PUBLIC, dpop_proof(SigningKey(), "POST", f"{BASE_URL}/token",
                                                                   runtime.now()))  # fmt: skip
    assert response.status_code == 200, response.text


# --- issue "Every client", item 5: refresh keeps the grant's scope; a workspace's token lifetime ----------------


@pytest.mark.parametrize("scope", [None, "mcp", "mcp offline_access"], ids=["omitted", "repeated", "with-offline"])
def test_a_refresh_that_omits_or_repeats_the_scope_keeps_the_grants_scope(runtime: Runtime, scope: str | None) -> None:
    # Given a grant for "mcp" (the client sent no scope at /authorize, as Claude Code does)
    client = http(runtime)
    first = exchange(client, runtime, PUBLIC, None).json()
    # When the client refreshes without scope, with the original, or with the metadata's scopes_supported
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": PUBLIC}
    refreshed = client.post(TOKEN, data=form | ({"scope": scope} if scope else {}))
    # Then the new token has the grant's scope
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "mcp"


def test_a_workspace_sets_its_own_access_token_lifetime() -> None:
    runtime = runtime_with(access_token_ttl_seconds=8 * 3600)
    body = exchange(http(runtime), runtime, PUBLIC, None).json()
    claims = runtime.access_tokens.verify(body["access_token"], route=echo(runtime))
    assert body["expires_in"] == 8 * 3600 and claims.expires_at - claims.issued_at == 8 * 3600
    default = runtime_with()
    assert exchange(http(default), default, PUBLIC, None).json()["expires_in"] == 3600  # unchanged elsewhere


def test_the_proof_key_must_be_public(runtime: Runtime) -> None:
    key = SigningKey()
    now = runtime.now()
    leaked = dataclasses.replace(key)
    proof = jwt.encode({"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": now}, leaked.private, algorithm="ES256",
                       headers={"typ": "dpop+jwt", "jwk": leaked.private_jwk})  # fmt: skip
    response = exchange(http(runtime), runtime, PUBLIC, proof)
    assert response.status_code == 400 and "must be a public key" in response.json()["error_description"]


def echo(runtime: Runtime) -> Route:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    return route

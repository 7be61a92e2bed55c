"""The OpenID Connect relying party against a scripted provider (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.config import OidcProvider
from gateway.crypto.pkce import s256
from gateway.identity import oidc
from gateway.identity.oidc import LoginSecrets, OidcError, RelyingParty
from tests.support.hostile_json import DEEP_SMALL_OBJECT

ISSUER = "https://idp.example.com"
CALLBACK = "https://gw.example.com/demo/oidc/callback"


class FakeProvider:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k1"
        self.claims: dict[str, Any] = {"name": "Alice", "groups": ["eng"]}
        self.userinfo: dict[str, Any] | None = None
        self.discovery: dict[str, Any] = {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize?tenant=t1",
            "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/jwks",
            "userinfo_endpoint": f"{ISSUER}/userinfo",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        self.requests: list[httpx.Request] = []
        self.nonce = ""
        self.alg = "RS256"
        self.signing_key: Any = self.key

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig"}]}

    def id_token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "gw", "sub": "u-1", "iat": now, "exp": now + 300, "nonce": self.nonce}
        claims.update(self.claims)
        claims.update(overrides)
        return jwt.encode(claims, self.signing_key, algorithm=self.alg, headers={"kid": self.kid})

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(200, json=self.discovery)
        if path == "/jwks":
            return httpx.Response(200, json=self.jwks())
        if path == "/token":
            return httpx.Response(200, json={"id_token": self.id_token(), "access_token": "at", "token_type": "Bearer"})
        if path == "/userinfo" and self.userinfo is not None:
            return httpx.Response(200, json=self.userinfo)
        return httpx.Response(404)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    oidc.clear_caches()
    yield FakeProvider()
    oidc.clear_caches()


def party(fake: FakeProvider, secret: str | None = "s3cret", **config: Any) -> RelyingParty:
    settings = OidcProvider.model_validate(
        {"type": "oidc", "issuer": ISSUER, "client_id": "gw", "extra_authorize_params": {"prompt": "login"}, **config}
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(fake.handle))
    return RelyingParty(settings, CALLBACK, secret, http=lambda: client)


def sign_in(fake: FakeProvider, rp: RelyingParty) -> Any:
    secrets = LoginSecrets.new()
    fake.nonce = secrets.nonce
    return asyncio.run(rp.sign_in(code="the-code", secrets=secrets))


def test_the_authorization_url_carries_pkce_state_nonce_and_extra_params(provider: FakeProvider) -> None:
    secrets = LoginSecrets.new()
    url = asyncio.run(party(provider).authorization_url(state="st", secrets=secrets))
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{ISSUER}/authorize?tenant=t1&")
    assert query["code_challenge"] == [s256(secrets.code_verifier)] and query["code_challenge_method"] == ["S256"]
    assert query["state"] == ["st"] and query["nonce"] == [secrets.nonce] and query["redirect_uri"] == [CALLBACK]
    assert query["scope"] == ["openid profile email"] and query["prompt"] == ["login"]


@pytest.mark.parametrize("document", ["discovery", "token"])
def test_provider_json_nested_too_deep_is_an_oidc_error(provider: FakeProvider, document: str) -> None:
    answer = provider.handle

    def hostile(request: httpx.Request) -> httpx.Response:
        if request.url.path == ("/.well-known/openid-configuration" if document == "discovery" else "/token"):
            return httpx.Response(200, content=DEEP_SMALL_OBJECT, headers={"Content-Type": "application/json"})
        return answer(request)

    provider.handle = hostile  # type: ignore[method-assign]
    with pytest.raises(OidcError, match="JSON"):
        sign_in(provider, party(provider))


def test_sign_in_verifies_the_id_token_and_maps_the_claims(provider: FakeProvider) -> None:
    user = sign_in(provider, party(provider))
    assert (user.id, user.name, user.groups) == ("u-1", "Alice", ("eng",))
    token_request = next(r for r in provider.requests if r.url.path == "/token")
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(b"gw:s3cret").decode()
    form = parse_qs(token_request.content.decode())
    assert form["grant_type"] == ["authorization_code"] and form["redirect_uri"] == [CALLBACK]
    assert "client_secret" not in form


def test_discovery_and_jwks_are_cached(provider: FakeProvider) -> None:
    rp = party(provider)
    sign_in(provider, rp)
    sign_in(provider, rp)
    paths = [r.url.path for r in provider.requests]
    assert paths.count("/.well-known/openid-configuration") == 1 and paths.count("/jwks") == 1


def test_an_unknown_kid_refetches_the_jwks_once(provider: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    rp = party(provider)
    sign_in(provider, rp)
    provider.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # the provider rotates
    provider.signing_key = provider.key
    provider.kid = "k2"
    monkeypatch.setattr(oidc, "JWKS_MIN_REFETCH_SECONDS", 0.0)
    assert sign_in(provider, rp).id == "u-1"
    assert [r.url.path for r in provider.requests].count("/jwks") == 2


def test_client_secret_post_and_public_clients(provider: FakeProvider) -> None:
    provider.discovery["token_endpoint_auth_methods_supported"] = ["client_secret_post"]
    sign_in(provider, party(provider))
    token_request = next(r for r in provider.requests if r.url.path == "/token")
    form = parse_qs(token_request.content.decode())
    assert form["client_secret"] == ["s3cret"] and "authorization" not in token_request.headers
    oidc.clear_caches()
    provider.requests.clear()
    sign_in(provider, party(provider, secret=None))
    token_request = next(r for r in provider.requests if r.url.path == "/token")
    assert parse_qs(token_request.content.decode())["client_id"] == ["gw"]


def test_es256_id_tokens_are_accepted(provider: FakeProvider) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key()))
    provider.jwks = lambda: {"keys": [{**public, "kid": "e1"}]}  # type: ignore[method-assign]
    provider.alg, provider.kid, provider.signing_key = "ES256", "e1", ec_key
    assert sign_in(provider, party(provider)).id == "u-1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "https://other.example.com"}, "not valid"),
        ({"aud": "someone-else"}, "not valid"),
        ({"exp": 1000}, "not valid"),
        ({"nonce": "replayed"}, "nonce"),
        ({"aud": ["gw", "other"]}, "azp"),
    ],
)
def test_bad_id_tokens_are_refused(provider: FakeProvider, overrides: dict[str, Any], message: str) -> None:
    provider.claims.update(overrides)
    with pytest.raises(OidcError, match=message):
        sign_in(provider, party(provider))


def test_an_algorithm_the_provider_does_not_advertise_is_refused(provider: FakeProvider) -> None:
    provider.discovery["id_token_signing_alg_values_supported"] = ["ES256"]
    with pytest.raises(OidcError, match="algorithm"):
        sign_in(provider, party(provider))


def test_hs256_is_never_accepted(provider: FakeProvider) -> None:
    provider.discovery["id_token_signing_alg_values_supported"] = ["HS256"]
    provider.alg, provider.signing_key = "HS256", "s3cret-s3cret-s3cret-s3cret-s3cret"
    with pytest.raises(OidcError, match="algorithm"):
        sign_in(provider, party(provider))


def test_a_discovery_document_for_another_issuer_is_refused(provider: FakeProvider) -> None:
    provider.discovery["issuer"] = "https://evil.example.com"
    with pytest.raises(OidcError, match="issuer"):
        sign_in(provider, party(provider))


def test_claims_missing_from_the_id_token_come_from_userinfo_with_the_same_sub(provider: FakeProvider) -> None:
    provider.claims = {}
    provider.userinfo = {"sub": "u-1", "name": "From UserInfo", "groups": ["ops"]}
    user = sign_in(provider, party(provider))
    assert (user.name, user.groups) == ("From UserInfo", ("ops",))
    oidc.clear_caches()
    provider.userinfo = {"sub": "someone-else", "name": "Mallory"}
    assert sign_in(provider, party(provider)).name is None


def test_configurable_and_nested_claims(provider: FakeProvider) -> None:
    provider.claims = {
        "email": "a@example.com", "email_verified": True, "preferred_username": "alice",
        "realm_access": {"roles": ["r1"]},
    }  # fmt: skip
    rp = party(provider, user_id_claim="email", name_claim="preferred_username", groups_claim="realm_access.roles")
    user = sign_in(provider, rp)
    assert (user.id, user.name, user.groups) == ("a@example.com", "alice", ("r1",))


@pytest.mark.parametrize("verified", [False, "false", None])
def test_an_email_the_provider_did_not_verify_never_names_the_user(provider: FakeProvider, verified: Any) -> None:
    # Given user_id_claim email, and a provider that does not say the address is verified (anyone can type one)
    provider.claims = {"email": "ceo@example.com", "name": "Mallory", "groups": []}
    if verified is not None:
        provider.claims["email_verified"] = verified
    # Then the sign-in is refused, saying why
    with pytest.raises(oidc.UnverifiedIdentity, match="email_verified"):
        sign_in(provider, party(provider, user_id_claim="email"))


def test_a_verified_email_from_userinfo_names_the_user(provider: FakeProvider) -> None:
    # Given an ID token with the address, and the verification only in UserInfo (as a string, like Cognito's)
    provider.claims = {"email": "a@example.com", "name": "Alice", "groups": []}
    provider.userinfo = {"sub": "u-1", "email_verified": "true"}
    # Then the user is signed in under the address
    assert sign_in(provider, party(provider, user_id_claim="email")).id == "a@example.com"


def test_a_missing_user_id_claim_says_which(provider: FakeProvider) -> None:
    with pytest.raises(OidcError, match="'email'"):
        sign_in(provider, party(provider, user_id_claim="email"))


def test_a_token_endpoint_error_is_reported_without_secrets(provider: FakeProvider) -> None:
    original = provider.handle

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "code expired"})
        return original(request)

    provider.handle = refuse  # type: ignore[method-assign]
    with pytest.raises(OidcError, match="invalid_grant code expired") as caught:
        sign_in(provider, party(provider))
    assert "s3cret" not in str(caught.value) and "the-code" not in str(caught.value)

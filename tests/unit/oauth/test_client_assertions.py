"""private_key_jwt client authentication (RFC 7523 §2.2, §3) at the token and revocation endpoints, over HTTP with an
in-memory runtime: pre-registered clients with inline keys or a jwks_uri (a real HTTPS server on 127.0.0.1),
metadata-document clients (ChatGPT's document: private_key_jwt or none), DCR clients; every broken assertion is a
401 invalid_client that says why, never a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.net.ssrf import SafeFetcher
from gateway.oauth.cimd import CimdResolver
from gateway.oauth.clients import ClientResolver
from gateway.oauth.key_sets import KeySetSource
from gateway.routes import Route
from gateway.runtime import Runtime
from gateway.storage.records import RegisteredClient
from gateway.web.metadata.app import create_app as metadata_app
from gateway.web.token.app import create_app
from tests.support.jose_keys import SigningKey, client_assertion, unsigned
from tests.support.runtime import BASE_URL, example_config_data, memory_runtime
from tests.unit.net.https_server import LocalHttps, Reply, local_https

TOKEN = "/demo/echo/token"
REVOKE = "/demo/echo/revoke"
ISSUER = f"{BASE_URL}/demo/echo"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INLINE_KEY = SigningKey()
URI_KEY = SigningKey()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalHttps]:
    with local_https() as running:
        running.replies["/keys.json"] = Reply(body=json.dumps(URI_KEY.jwks()).encode())
        yield running


def fetcher_for(server: LocalHttps) -> SafeFetcher:
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    return SafeFetcher(allow_private=True, verify=server.client_context(), resolver=to_loopback)


def runtime_for(server: LocalHttps, *, seed_fetchers: bool = True) -> Runtime:
    data = example_config_data()
    data["workspaces"]["demo"]["clients"] = [
        {"client_id": "ci-inline", "client_name": "CI (inline keys)", "jwks": INLINE_KEY.jwks(),
         "service_identity": "service:inline", "servers": ["echo"]},
        {"client_id": "ci-uri", "client_name": "CI (jwks_uri)", "jwks_uri": server.url("/keys.json", host="cimd.test"),
         "service_identity": "service:uri"},
        {"client_id": "ci-private", "client_name": "CI (keys on a private address)",
         "jwks_uri": server.url("/keys.json", host="127.0.0.1"), "service_identity": "service:private"},
    ]  # fmt: skip
    runtime = memory_runtime(parse_config(data))
    if seed_fetchers:
        fetcher = fetcher_for(server)
        runtime.__dict__["key_sets"] = KeySetSource(fetcher)
        runtime.__dict__["client_resolver"] = ClientResolver(
            runtime.clients, runtime.config, CimdResolver(fetcher), runtime.secret_resolver
        )
    return runtime


@pytest.fixture
def runtime(server: LocalHttps) -> Runtime:
    return runtime_for(server)


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime), raise_server_exceptions=False)


def credentials_form(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, **extra}  # fmt: skip


def test_a_client_with_inline_keys_gets_a_client_credentials_token_with_its_assertion(
    client: TestClient, runtime: Runtime
) -> None:
    # Given an assertion signed by the pre-registered client's key, addressed to the issuer
    assertion = client_assertion(INLINE_KEY, "ci-inline", ISSUER, runtime.now())

    # When it asks for a token without any other credential (client_id is optional, RFC 7523 §2.2)
    response = client.post(TOKEN, data=credentials_form(assertion))

    # Then it gets one, as its service identity
    assert response.status_code == 200, response.text
    claims = runtime.access_tokens.verify(response.json()["access_token"], route=echo(runtime))
    assert claims.user_id == "service:inline" and claims.client_id == "ci-inline"


def test_a_client_whose_keys_are_at_a_jwks_uri_authenticates_and_the_keys_are_fetched_once(
    client: TestClient, runtime: Runtime, server: LocalHttps
) -> None:
    before = server.hits.get("/keys.json", 0)
    for audience in (ISSUER, f"{ISSUER}/token"):  # the issuer or the token endpoint (OIDC Core §9)
        assertion = client_assertion(URI_KEY, "ci-uri", audience, runtime.now())
        response = client.post(TOKEN, data=credentials_form(assertion, client_id="ci-uri"))
        assert response.status_code == 200, response.text
    assert server.hits["/keys.json"] == before + 1  # cached in the container


def refused(client: TestClient, form: dict[str, str]) -> str:
    response = client.post(TOKEN, data=form)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    description: str = response.json()["error_description"]
    return description


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "https://elsewhere.example/token"}, "aud must name this authorization server"),
        ({"exp": -120}, "expired"),
        ({"exp": 3600}, "too far ahead"),
        ({"iss": "someone-else"}, "iss and sub must both be the client_id"),
        ({"jti": None}, "'jti'"),
        ({"exp": None}, "'exp'"),
    ],
    ids=["wrong-aud", "expired", "exp-too-far", "wrong-iss", "no-jti", "no-exp"],
)
def test_a_broken_assertion_is_invalid_client_with_the_reason(
    client: TestClient, runtime: Runtime, changes: dict[str, Any], reason: str
) -> None:
    now = runtime.now()
    timed = {name: now + value if name == "exp" and value is not None else value for name, value in changes.items()}
    assertion = client_assertion(INLINE_KEY, "ci-inline", ISSUER, now, **timed)
    assert reason in refused(client, credentials_form(assertion))


def test_an_assertion_is_single_use(client: TestClient, runtime: Runtime) -> None:
    assertion = client_assertion(INLINE_KEY, "ci-inline", ISSUER, runtime.now())
    assert client.post(TOKEN, data=credentials_form(assertion)).status_code == 200
    assert "already used" in refused(client, credentials_form(assertion))


def test_unsigned_hmac_and_foreign_key_assertions_are_refused(client: TestClient, runtime: Runtime) -> None:
    now = runtime.now()
    claims = {"iss": "ci-inline", "sub": "ci-inline", "aud": ISSUER, "jti": "j1", "iat": now, "exp": now + 60}
    # alg none (RFC 7519 §6), an HMAC "signed" with the public key's text, another client's key
    assert "not accepted" in refused(client, credentials_form(unsigned(claims)))
    import jwt

    hmac_signed = jwt.encode(claims, "the-public-key-used-as-a-shared-secret", algorithm="HS256")
    assert "not accepted" in refused(client, credentials_form(hmac_signed))
    impostor = SigningKey(kid=INLINE_KEY.kid)
    assert "does not verify" in refused(client, credentials_form(client_assertion(impostor, "ci-inline", ISSUER, now)))
    # And garbage in the assertion or a wrong assertion type is a clear 4xx too
    assert "unusable" in refused(client, credentials_form("not-a-jwt"))
    wrong_type = {**credentials_form("x.y.z"), "client_assertion_type": "urn:example:saml"}
    assert "client_assertion_type" in refused(client, wrong_type)


def test_an_assertion_and_a_secret_together_are_refused(client: TestClient, runtime: Runtime) -> None:
    assertion = client_assertion(INLINE_KEY, "ci-inline", ISSUER, runtime.now())
    response = client.post(TOKEN, data=credentials_form(assertion, client_secret="also-this"))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_key_client_without_an_assertion_is_told_to_send_one(client: TestClient) -> None:
    description = refused(client, {"grant_type": "client_credentials", "client_id": "ci-inline"})
    assert "private_key_jwt" in description


def test_a_jwks_uri_on_a_private_address_is_refused_by_the_ssrf_guard(server: LocalHttps) -> None:
    # Given a deployed-like runtime whose key fetcher keeps to public addresses (the configuration's default)
    runtime = runtime_for(server, seed_fetchers=False)
    client = TestClient(create_app(runtime), raise_server_exceptions=False)
    before = server.hits.get("/keys.json", 0)

    # When a client whose jwks_uri is on 127.0.0.1 authenticates
    assertion = client_assertion(URI_KEY, "ci-private", ISSUER, runtime.now())
    description = refused(client, credentials_form(assertion))

    # Then it is refused with the reason, and nothing was fetched
    assert "non-public address" in description
    assert server.hits.get("/keys.json", 0) == before


# --- metadata-document clients (ChatGPT) --------------------------------------------------------------------


CHATGPT_KEY = SigningKey()


def publish_chatgpt(server: LocalHttps, path: str, **extra: Any) -> str:
    """A document shaped like ChatGPT's (issue "Every client"): private_key_jwt preferred, none also supported."""
    url = server.url(path, host="cimd.test")
    document = {
        "client_id": url,
        "client_name": "ChatGPT",
        "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "jwks_uri": server.url("/chatgpt-keys.json", host="cimd.test"),
        **extra,
    }
    server.replies[path] = Reply(body=json.dumps(document).encode(), headers={"Content-Type": "application/json"})
    server.replies["/chatgpt-keys.json"] = Reply(body=json.dumps(CHATGPT_KEY.jwks()).encode())
    return url


def test_chatgpts_metadata_document_authenticates_with_private_key_jwt_or_as_a_public_client(
    client: TestClient, runtime: Runtime, server: LocalHttps
) -> None:
    # Given ChatGPT's client ID metadata document
    client_id = publish_chatgpt(server, "/oauth/chatgpt/client.json")
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    resolver = runtime.client_resolver

    # When the gateway resolves it, the client is accepted (the old code refused private_key_jwt documents)
    info = asyncio.run(resolver.resolve(route, client_id, runtime.now()))
    assert info.token_endpoint_auth_method == "private_key_jwt" and info.is_public and info.has_keys

    # And /revoke accepts it both ways: with an assertion signed by its key, and with its client_id alone
    assertion = client_assertion(CHATGPT_KEY, client_id, ISSUER, runtime.now())
    with_key = client.post(REVOKE, data={"token": "x", "client_assertion_type": ASSERTION_TYPE,
                                         "client_assertion": assertion})  # fmt: skip
    assert with_key.status_code == 200, with_key.text
    assert client.post(REVOKE, data={"token": "x", "client_id": client_id}).status_code == 200

    # But an assertion signed by another key is refused, not taken as a public request
    forged = client_assertion(SigningKey(kid=CHATGPT_KEY.kid), client_id, ISSUER, runtime.now())
    response = client.post(REVOKE, data={"token": "x", "client_assertion_type": ASSERTION_TYPE,
                                         "client_assertion": forged})  # fmt: skip
    assert response.status_code == 401 and "does not verify" in response.json()["error_description"]


def test_a_private_key_jwt_only_document_must_authenticate(
    client: TestClient, runtime: Runtime, server: LocalHttps
) -> None:
    client_id = publish_chatgpt(server, "/oauth/strict/client.json", token_endpoint_auth_methods_supported=None)
    response = client.post(REVOKE, data={"token": "x", "client_id": client_id})
    assert response.status_code == 401 and "private_key_jwt" in response.json()["error_description"]


def test_a_registered_client_with_keys_authenticates_with_them(client: TestClient, runtime: Runtime) -> None:
    # Given a client registered (RFC 7591) with private_key_jwt and its keys
    now = runtime.now()
    key = SigningKey()
    runtime.clients.create(RegisteredClient(
        client_id="dcr-keys", route_key="demo/echo", client_name="DCR with keys", redirect_uris=("http://127.0.0.1/cb",),
        token_endpoint_auth_method="private_key_jwt", client_secret_hash=None, created_at=now, last_used_at=now,
        expires_at=now + 3600, jwks=key.jwks(),
    ))  # fmt: skip

    # Then its assertion authenticates it at /revoke, and its bare client_id does not
    assertion = client_assertion(key, "dcr-keys", f"{ISSUER}/token", now)
    form = {"token": "x", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    ok = client.post(REVOKE, data=form)
    assert ok.status_code == 200, ok.text
    assert client.post(REVOKE, data={"token": "x", "client_id": "dcr-keys"}).status_code == 401


def test_metadata_advertises_private_key_jwt_with_asymmetric_algorithms_only(runtime: Runtime) -> None:
    metadata = TestClient(metadata_app(runtime)).get("/.well-known/oauth-authorization-server/demo/echo").json()
    assert "private_key_jwt" in metadata["token_endpoint_auth_methods_supported"]
    algorithms = metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "ES256" in algorithms and "RS256" in algorithms
    assert not [alg for alg in algorithms if alg == "none" or alg.startswith("HS")]
    assert not [alg for alg in metadata["dpop_signing_alg_values_supported"] if alg == "none" or alg.startswith("HS")]


def echo(runtime: Runtime) -> Route:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    return route

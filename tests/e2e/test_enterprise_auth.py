"""private_key_jwt, DPoP and ID-JAG end to end with a client library no one here wrote: npm ``oauth4webapi``
(tests/fixtures/oauth-client/client.mjs) against a gateway of its own, and an enterprise identity provider
(tests/fixtures/oauth-client/idp.mjs, signing with npm ``jose``) that issues ID-JAGs by token exchange.

The gateway (a subprocess: its own moto, the demo upstream) trusts that IdP for route demo/echo, and knows three
clients: ``ci-keys`` (client_credentials with private_key_jwt, keys at a jwks_uri on the local HTTPS host),
``enterprise-agent`` (the IdP names it in its ID-JAGs; authenticates with private_key_jwt, inline keys), and a
ChatGPT-shaped client ID metadata document (private_key_jwt or none, keys at a jwks_uri). Negative cases are sent
with httpx: each is a 4xx or a ``WWW-Authenticate`` challenge that says why, never a 5xx.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from infra.demo_upstream import DemoUpstream
from infra.dev import DEMO_UPSTREAM_URL, EXAMPLE_CONFIG
from tests.e2e.conftest import HOST, CimdHost, _Process, gateway_process
from tests.support.jose_keys import SigningKey, client_assertion, dpop_proof, unsigned
from tests.support.node_tools import FIXTURES, NODE22, ensure_installed
from tests.support.oauth_http import authorize
from tests.unit.net.https_server import Reply

pytestmark = [pytest.mark.e2e]

CLIENT_DIR = FIXTURES / "oauth-client"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
IDP_CLIENT, IDP_SECRET = "agent-at-idp", "idp-secret"
CI_KEY, AGENT_KEY, CHATGPT_KEY = SigningKey(), SigningKey(), SigningKey()
REDIRECT = f"http://{HOST}:9/callback"  # loopback: nothing listens, the authorization response is read off the 303


@dataclass(frozen=True)
class Stack:
    gateway: str
    idp: str
    cimd: CimdHost

    @property
    def issuer(self) -> str:
        return f"{self.gateway}/demo/echo"

    @property
    def mcp(self) -> str:
        return f"{self.issuer}/mcp"


def gateway_config(upstream_url: str, idp: str, cimd: CimdHost) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text().replace(DEMO_UPSTREAM_URL, upstream_url))
    config["oauth"] = {"cimd_allow_private_addresses": True}  # the IdP and the HTTPS host are on 127.0.0.1
    demo = config["workspaces"]["demo"]
    demo["clients"] = [
        {"client_id": "ci-keys", "client_name": "CI with keys", "jwks_uri": cimd.url("/ci-keys.json"),
         "service_identity": "service:keys-ci", "servers": ["echo"]},
        {"client_id": "enterprise-agent", "client_name": "Enterprise agent", "jwks": AGENT_KEY.jwks(),
         "redirect_uris": [REDIRECT]},
        {"client_id": "other-agent", "client_name": "Another agent", "client_secret": "plain:other-secret",
         "redirect_uris": [REDIRECT]},
    ]  # fmt: skip
    demo["enterprise_authorization"] = {
        "issuers": [{"issuer": idp, "jwks_uri": f"{idp}/jwks", "clients": ["enterprise-agent"], "servers": ["echo"]}]
    }
    return config


@pytest.fixture(scope="module")
def stack(demo_upstream: DemoUpstream, cimd_host: CimdHost, free_port: Callable[[], int]) -> Iterator[Stack]:
    ensure_installed(CLIENT_DIR)
    cimd_host.https.replies["/ci-keys.json"] = Reply(body=json.dumps(CI_KEY.jwks()).encode())
    idp_port, gateway_port = free_port(), free_port()
    clients = {IDP_CLIENT: {"secret": IDP_SECRET, "resource_client_id": "enterprise-agent"}}
    idp = _Process(
        [str(NODE22), "idp.mjs"],
        cwd=CLIENT_DIR,
        env={"PATH": "/usr/bin:/bin", "IDP_PORT": str(idp_port), "IDP_CLIENTS": json.dumps(clients)},
    )
    try:
        issuer = idp.wait_for("listening ", "the enterprise IdP")
        with tempfile.TemporaryDirectory(prefix="e2e-enterprise-") as directory:
            config = gateway_config(demo_upstream.url, issuer, cimd_host)
            gateway = gateway_process(config, Path(directory), gateway_port,
                                      env={"SSL_CERT_FILE": str(cimd_host.ca_bundle)})  # fmt: skip
            try:
                yield Stack(gateway.wait_for("ready ", "the gateway"), issuer, cimd_host)
            finally:
                gateway.stop()
    finally:
        idp.stop()


def run_client(command: dict[str, Any], answer: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Run client.mjs with ``command``; ``answer`` gets the authorization URL it prints and returns the redirect."""
    process = subprocess.Popen(
        [str(NODE22), "client.mjs", json.dumps(command)], cwd=CLIENT_DIR, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        for line in process.stdout:
            message = json.loads(line)
            if "authorize" in message:
                assert answer is not None
                process.stdin.write(answer(message["authorize"]) + "\n")
                process.stdin.flush()
            elif "done" in message:
                result: dict[str, Any] = message["done"]
                return result
            else:
                pytest.fail(f"oauth4webapi failed: {message}\n{process.stderr.read() if process.stderr else ''}")
        pytest.fail(f"client.mjs ended without a result: {process.stderr.read() if process.stderr else ''}")
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def assert_mcp_ok(call: dict[str, Any]) -> None:
    assert call["status"] == 200, call
    assert '"serverInfo"' in call["body"], call


def assert_refused_as_bearer(call: dict[str, Any]) -> None:
    assert call["status"] == 401, call
    assert call["www_authenticate"].startswith('DPoP error="invalid_dpop_proof"'), call


def test_oauth4webapi_gets_a_client_credentials_token_with_private_key_jwt_and_dpop(stack: Stack) -> None:
    # Given a pre-registered service client whose keys are at a jwks_uri
    # When oauth4webapi discovers the route, authenticates with private_key_jwt and sends a DPoP proof
    result = run_client({"flow": "client_credentials", "issuer": stack.issuer, "client_id": "ci-keys",
                         "private_jwk": CI_KEY.private_jwk, "mcp": stack.mcp, "dpop": True})  # fmt: skip

    # Then it gets a DPoP token without a refresh token, the MCP call works with its proofs, and the same token
    # sent as Bearer (a thief without the key) is refused
    assert result["token_type"] == "dpop" and not result["has_refresh_token"]
    assert_mcp_ok(result["call"])
    assert_refused_as_bearer(result["as_bearer"])


def publish_chatgpt_document(stack: Stack, path: str) -> str:
    """A client ID metadata document shaped like ChatGPT's (issue "Every client"): private_key_jwt preferred, none
    also supported, keys at a jwks_uri."""
    url = stack.cimd.url(path)
    document = {
        "client_id": url, "client_name": "ChatGPT (replayed)", "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "jwks_uri": stack.cimd.url("/chatgpt-keys.json"), "grant_types": ["authorization_code", "refresh_token"],
    }  # fmt: skip
    stack.cimd.https.replies[path] = Reply(
        body=json.dumps(document).encode(), headers={"Content-Type": "application/json"}
    )
    stack.cimd.https.replies["/chatgpt-keys.json"] = Reply(body=json.dumps(CHATGPT_KEY.jwks()).encode())
    return url


def sign_in(url: str) -> str:
    return authorize(url.split("?", 1)[0], list(httpx.URL(url).params.multi_items())).location


@pytest.mark.parametrize("authentication", ["private_key_jwt", "none"])
def test_a_chatgpt_shaped_metadata_document_signs_in_with_oauth4webapi_and_dpop(
    stack: Stack, authentication: str
) -> None:
    # Given ChatGPT's kind of client ID metadata document
    client_id = publish_chatgpt_document(stack, f"/oauth/chatgpt-{authentication}/client.json")
    command: dict[str, Any] = {"flow": "authorization_code", "issuer": stack.issuer, "client_id": client_id,
                               "redirect_uri": REDIRECT, "mcp": stack.mcp, "dpop": True}  # fmt: skip
    if authentication == "private_key_jwt":
        command["private_jwk"] = CHATGPT_KEY.private_jwk

    # When oauth4webapi runs the authorization-code flow (alice signs in and approves), with DPoP throughout
    result = run_client(command, sign_in)

    # Then the code exchange and the refresh give DPoP tokens that work at the MCP endpoint, and not as Bearer
    assert result["token_type"] == "dpop" and result["has_refresh_token"]
    assert_mcp_ok(result["call"])
    assert_refused_as_bearer(result["as_bearer"])
    assert result["refreshed"]["token_type"] == "dpop"
    assert_mcp_ok(result["refreshed"]["call"])
    if authentication == "none":
        # And a public client's refresh token is bound to its key: another key cannot use it
        assert result["stolen_refresh"]["status"] == 400, result["stolen_refresh"]
        assert "bound to a DPoP key" in result["stolen_refresh"]["body"]["error_description"]


def id_token(stack: Stack, sub: str = "alice@corp") -> str:
    response = httpx.post(f"{stack.idp}/test/id-token", json={"sub": sub, "aud": IDP_CLIENT, "name": "Alice Corp",
                                                              "groups": ["engineering"]}, timeout=30)  # fmt: skip
    token: str = response.json()["id_token"]
    return token


def test_an_id_jag_from_the_enterprise_idp_is_redeemed_by_oauth4webapi(stack: Stack) -> None:
    # Given a user signed in at the enterprise IdP (its ID token)
    # When oauth4webapi exchanges it at the IdP for an ID-JAG and redeems that at the route, with DPoP
    result = run_client({
        "flow": "id_jag", "idp": stack.idp, "idp_client_id": IDP_CLIENT, "idp_client_secret": IDP_SECRET,
        "id_token": id_token(stack), "issuer": stack.issuer, "client_id": "enterprise-agent",
        "private_jwk": AGENT_KEY.private_jwk, "mcp": stack.mcp, "dpop": True,
    })  # fmt: skip

    # Then it gets a DPoP access token, no refresh token, that works at the MCP endpoint and not as Bearer
    assert result["token_type"] == "dpop" and result["scope"] == "mcp" and not result["has_refresh_token"]
    assert_mcp_ok(result["call"])
    assert_refused_as_bearer(result["as_bearer"])

    # And the same ID-JAG cannot be redeemed twice
    replay = redeem(stack, result["id_jag"])
    assert replay.status_code == 400 and "already redeemed" in replay.json()["error_description"]


# --- negative cases, over plain HTTP ----------------------------------------------------------------------------


def agent_auth(stack: Stack) -> dict[str, str]:
    assertion = client_assertion(AGENT_KEY, "enterprise-agent", stack.issuer, int(time.time()))
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


def redeem(stack: Stack, assertion: str, **form: str) -> httpx.Response:
    data = {"grant_type": JWT_BEARER, "assertion": assertion, **agent_auth(stack), **form}
    return httpx.post(f"{stack.issuer}/token", data=data, timeout=30)


def idp_signed(stack: Stack, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": stack.idp, "sub": "alice@corp", "aud": stack.issuer, "resource": stack.mcp,
        "client_id": "enterprise-agent", "jti": secrets.token_urlsafe(8), "iat": now, "exp": now + 300,
    }  # fmt: skip
    claims.update(changes)
    response = httpx.post(f"{stack.idp}/test/sign", timeout=30,
                          json={"header": {"typ": "oauth-id-jag+jwt"}, "claims": claims})  # fmt: skip
    signed: str = response.json()["jwt"]
    return signed


def test_broken_id_jags_and_assertions_are_clear_4xx_never_5xx(stack: Stack) -> None:
    now = int(time.time())
    cases: dict[str, tuple[httpx.Response, str, str]] = {
        "wrong aud": (redeem(stack, idp_signed(stack, aud=f"{stack.gateway}/demo/toolbox")), "invalid_grant", "aud"),
        "wrong resource": (redeem(stack, idp_signed(stack, resource=f"{stack.gateway}/demo/toolbox/mcp")),
                           "invalid_grant", "resource"),
        "expired": (redeem(stack, idp_signed(stack, iat=now - 900, exp=now - 600)), "invalid_grant", "expired"),
        "wrong client": (redeem(stack, idp_signed(stack, client_id="other-agent")), "invalid_grant", "another client"),
        "untrusted issuer": (redeem(stack, SigningKey().sign({"iss": "https://evil.example", "sub": "alice"},
                                                             typ="oauth-id-jag+jwt")), "invalid_grant", "not trusted"),
        "none alg": (redeem(stack, unsigned({"iss": stack.idp}, typ="oauth-id-jag+jwt")), "invalid_grant",
                     "not accepted"),
        "malformed assertion": (redeem(stack, "not.a.jwt"), "invalid_grant", "malformed"),
        "malformed client assertion": (
            httpx.post(f"{stack.issuer}/token", timeout=30, data={
                "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": "garbage"}),
            "invalid_client", "unusable",
        ),
        "client assertion for another server": (
            httpx.post(f"{stack.issuer}/token", timeout=30, data={
                "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": client_assertion(CI_KEY, "ci-keys", "https://elsewhere.example", now)}),
            "invalid_client", "aud",
        ),
    }  # fmt: skip
    for name, (response, error, reason) in cases.items():
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
        assert response.json()["error"] == error and reason in response.json()["error_description"], (
            name,
            response.text,
        )

    # And the other client, which the IdP does not name, may not redeem
    other = httpx.post(
        f"{stack.issuer}/token",
        auth=("other-agent", "other-secret"),
        timeout=30,
        data={"grant_type": JWT_BEARER, "assertion": idp_signed(stack, client_id="other-agent")},
    )
    assert other.status_code == 400 and other.json()["error"] == "unauthorized_client"


def test_proofs_for_another_url_or_method_are_refused_at_the_mcp_endpoint(stack: Stack) -> None:
    # Given a DPoP-bound client_credentials token
    key = SigningKey()
    now = int(time.time())
    token = httpx.post(
        f"{stack.issuer}/token", timeout=30,
        headers={"DPoP": dpop_proof(key, "POST", f"{stack.issuer}/token", now)},
        data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
              "client_assertion": client_assertion(CI_KEY, "ci-keys", stack.issuer, now)},
    ).json()["access_token"]  # fmt: skip
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}

    def call(proof: str) -> httpx.Response:
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof, "Accept": "application/json, text/event-stream"}
        return httpx.post(stack.mcp, json=ping, headers=headers, timeout=30)

    # Then proofs for another route or another method are refused with the DPoP challenge
    for proof in (dpop_proof(key, "POST", f"{stack.gateway}/demo/toolbox/mcp", now, access_token=token),
                  dpop_proof(key, "GET", stack.mcp, now, access_token=token)):  # fmt: skip
        response = call(proof)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    # And the right proof works
    assert call(dpop_proof(key, "POST", stack.mcp, now, access_token=token)).status_code == 200

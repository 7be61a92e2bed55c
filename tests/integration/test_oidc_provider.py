"""Sign-in through a real OpenID Provider: panva/oidc-provider (OpenID Certified) run locally on 127.0.0.1.

The gateway's authorize app runs in-process (TestClient, in-memory stores); the provider runs in node from
tests/fixtures/oidc (``npm install`` there on first use). The browser is played by httpx: /authorize on the gateway →
the provider's authorization endpoint → its login form → the gateway's workspace callback → the consent page.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.crypto.hashing import hash_secret
from gateway.crypto.pkce import s256
from gateway.identity import oidc
from gateway.oauth.errors import OAuthError
from gateway.routes import Route
from gateway.storage.records import ClientSource
from gateway.web.authorize import app as authorize_app
from infra.memory.stores import MemoryGrantStore
from tests.support.runtime import memory_runtime

logger = logging.getLogger(__name__)


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "oidc"
GATEWAY = "http://127.0.0.1:8080"  # the gateway's public base URL; the TestClient answers for it in-process
REDIRECT = "http://127.0.0.1:33418/callback"
VERIFIER = "w" * 64
IDP_CLIENT_ID = "mcp-gateway"
IDP_CLIENT_SECRET = "gateway-secret"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
    # The provider is a Node process whose clock a shifted run (GATEWAY_TEST_CLOCK_SHIFT_SECONDS) cannot move: its
    # cookies and ID tokens carry its own times, which the gateway and the test's browser judge against theirs.
    pytest.mark.real_clock,
]


@dataclass(frozen=True)
class McpClient:
    client_id: str = "client-1"
    client_name: str = "Inspector (test)"
    source: ClientSource = "dcr"
    redirect_uris: tuple[str, ...] = (REDIRECT,)
    client_uri: str | None = None
    logo_uri: str | None = None


class Lookup:
    async def resolve(self, route: Route, client_id: str, now: int) -> McpClient:
        if client_id != "client-1":
            raise OAuthError("invalid_client", "unknown")
        return McpClient()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _npm_install() -> None:
    if (FIXTURE / "node_modules" / "oidc-provider").is_dir():
        return
    logger.warning("installing oidc-provider into %s (npm install, once)", FIXTURE)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, timeout=300)


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    _npm_install()
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": IDP_CLIENT_ID,
        "OIDC_CLIENT_SECRET": IDP_CLIENT_SECRET,
        "OIDC_REDIRECT_URI": f"{GATEWAY}/corp/oidc/callback",
    }
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=FIXTURE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if line.startswith("listening "):
                break
            if (not line and process.poll() is not None) or time.monotonic() > deadline:
                pytest.fail(f"oidc-provider did not start (exit {process.poll()})")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def gateway(issuer: str) -> TestClient:
    config = {
        "workspaces": {
            "corp": {
                "title": "Corp",
                "identity_provider": {
                    "type": "oidc",
                    "issuer": issuer,
                    "client_id": IDP_CLIENT_ID,
                    "client_secret": f"plain:{IDP_CLIENT_SECRET}",
                    "scopes": ["openid", "profile", "groups"],
                },
                "servers": {
                    "tools": {"title": "Team tools", "upstream": "https://tools.example.com/mcp"},
                    "restricted": {"upstream": "https://secret.example.com/mcp", "access": {"groups": ["engineering"]}},
                },
            }
        }
    }
    oidc.clear_caches()
    runtime = memory_runtime(parse_config(config), base_url=GATEWAY)
    runtime.__dict__["client_resolver"] = Lookup()
    client = TestClient(authorize_app.create_app(runtime), base_url=GATEWAY, follow_redirects=False)
    client.runtime = runtime  # type: ignore[attr-defined]
    return client


def _gateway_path(url: str) -> str:
    parts = urlsplit(url)
    assert url.startswith(GATEWAY), url
    return f"{parts.path}?{parts.query}"


def sign_in_at_provider(gateway: TestClient, server: str, login: str) -> Any:
    """Run /authorize and the provider's login; return the gateway's response to the provider's callback."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "client-1",
            "redirect_uri": REDIRECT,
            "code_challenge": s256(VERIFIER),
            "code_challenge_method": "S256",
            "state": "client-state",
        }
    )
    start = gateway.get(f"/corp/{server}/authorize?{query}")
    assert start.status_code == 303, start.text
    location = start.headers["location"]
    with httpx.Client(trust_env=False, timeout=10) as browser:
        for _ in range(10):
            if location.startswith(GATEWAY):
                return gateway.get(_gateway_path(location))
            response = browser.get(location)
            if response.status_code == 200 and 'name="login"' in response.text:
                action = re.search(r'action="([^"]+)"', response.text)
                assert action, response.text
                response = browser.post(
                    urljoin(location, action.group(1)), data={"prompt": "login", "login": login, "password": "any"}
                )
            assert response.status_code in (302, 303), response.text[:500]
            location = urljoin(location, response.headers["location"])
    raise AssertionError("the provider never redirected back to the gateway")


def test_alice_signs_in_at_the_provider_and_sees_the_consent_page(gateway: TestClient) -> None:
    # Given alice at the real OpenID Provider / When the provider sends her back to the workspace callback
    callback = sign_in_at_provider(gateway, "tools", "alice")
    # Then the gateway verified her ID token and shows consent for the right client and route
    assert callback.status_code == 303, callback.text
    consent_path = _gateway_path(callback.headers["location"])
    assert consent_path.startswith("/corp/tools/consent?p=")
    page = gateway.get(consent_path)
    assert page.status_code == 200, page.text
    assert "Inspector (test)" in page.text and "Team tools" in page.text and "tools.example.com" in page.text
    assert "Signed in as Alice Example" in page.text  # the name came from the provider's UserInfo endpoint
    pending_id = parse_qs(urlsplit(consent_path).query)["p"][0]
    grants = gateway.runtime.grants  # type: ignore[attr-defined]
    assert isinstance(grants, MemoryGrantStore)
    pending = grants.get_pending(pending_id, gateway.runtime.now())  # type: ignore[attr-defined]
    assert pending is not None
    assert (pending.user_id, pending.user_groups, pending.idp_state) == ("alice", ("engineering",), None)
    # And approving returns a code to the MCP client
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    done = gateway.post("/corp/tools/consent", data={"p": pending_id, "csrf": csrf.group(1), "decision": "approve"})
    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert query["state"] == ["client-state"] and query["iss"] == [f"{GATEWAY}/corp/tools"]
    assert grants.get_code(hash_secret(query["code"][0]), 0) is not None


def test_bob_is_denied_a_route_restricted_to_engineering(gateway: TestClient) -> None:
    response = sign_in_at_provider(gateway, "restricted", "bob")
    assert response.status_code == 403
    assert "Bob Example is not allowed to use restricted" in response.text
    assert "error=access_denied" in response.text
    grants = gateway.runtime.grants  # type: ignore[attr-defined]
    assert isinstance(grants, MemoryGrantStore) and grants._codes == {}


def test_a_replayed_provider_callback_is_refused(gateway: TestClient) -> None:
    first = sign_in_at_provider(gateway, "tools", "alice")
    assert first.status_code == 303
    # The same callback URL again (e.g. from history): the pending authorization no longer expects it
    replay = gateway.get(first.request.url.path + "?" + first.request.url.query.decode())
    assert replay.status_code == 400

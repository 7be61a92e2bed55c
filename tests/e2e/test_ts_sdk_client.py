"""The official TypeScript SDK (``@modelcontextprotocol/sdk``) against the gateway, from a small Node script.

``tests/fixtures/ts-client/client.mjs`` is given the route URL and a loopback port and nothing else. The SDK's
OAuth support discovers the authorization server from the gateway's 401 (Protected Resource Metadata, then
authorization-server metadata), registers a client (DCR) and builds the authorization URL with PKCE; the script
serves its loopback redirect URI and prints the URL. Here alice signs in and approves consent in headless Chromium,
which lands on the script's callback; the SDK exchanges the code, lists tools and calls ``echo`` through the proxy.

Screenshots of the sign-in and consent pages are saved under ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.devserver import DevServer
from tests.support.browser import chromium
from tests.support.mcp_client import run_async
from tests.support.node_tools import NODE22, TS_CLIENT_DIR, ensure_installed
from tests.support.oauth_http import route_url
from tests.support.sign_in import BrowserVisit, User, authorize_in_browser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = User("alice", "alice-password")
SCRIPT_TIMEOUT_S = 90
ECHO_TEXT = "hello from the TypeScript SDK"


class ClientScript:
    """``node client.mjs <url> <port>`` with its JSON-lines stdout collected in the background."""

    def __init__(self, url: str, port: int) -> None:
        self.process = subprocess.Popen(
            [str(NODE22), "client.mjs", url, str(port), ECHO_TEXT],
            cwd=TS_CLIENT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        stdout, stderr = self.process.stdout, self.process.stderr
        assert stdout is not None and stderr is not None
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(iter(stderr.readline, "")), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            self.events.append(json.loads(line))

    def wait_for(self, event: str, timeout: float = SCRIPT_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for seen in list(self.events):
                if seen["event"] == event:
                    return seen
                if seen["event"] == "error":
                    pytest.fail(f"the TypeScript client failed: {seen['message']}\n{''.join(self.stderr)}")
            if self.process.poll() is not None and not any(e["event"] == event for e in self.events):
                time.sleep(0.2)  # let the reader drain what the process printed last
                if not any(e["event"] == event for e in self.events):
                    exited = f"the TypeScript client exited ({self.process.returncode}) before {event!r}"
                    pytest.fail(f"{exited}: {self.events}\n{''.join(self.stderr)}")
            time.sleep(0.05)
        pytest.fail(f"the TypeScript client printed no {event!r} within {timeout:g} s: {self.events}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def sign_in_in_chromium(authorization_url: str, redirect_uri: str, artifacts: Path) -> BrowserVisit:
    """Sign in as alice and approve, in headless Chromium, in a thread of its own (its own event loop)."""

    async def visit() -> BrowserVisit:
        async with chromium(artifacts) as browser:
            return await authorize_in_browser(browser, authorization_url, redirect_uri=redirect_uri, user=ALICE)

    return run_async(visit)


def test_the_typescript_sdk_client_signs_in_and_calls_echo_through_the_gateway(
    dev_server: DevServer, free_port: Callable[[], int], artifacts: Path
) -> None:
    # Given the TypeScript SDK client script, which knows only the demo route's URL and its loopback port
    ensure_installed(TS_CLIENT_DIR)
    port = free_port()
    redirect_uri = f"http://127.0.0.1:{port}/callback"
    script = ClientScript(route_url(dev_server.url, "demo", "echo"), port)
    try:
        # When the SDK has discovered the authorization server and registered itself, and prints where to sign in
        authorization_url = script.wait_for("authorize")["url"]

        # Then the authorization request is the route's, with PKCE (S256) and its loopback redirect URI
        assert authorization_url.startswith(f"{dev_server.url}/demo/echo/authorize?")
        assert "code_challenge_method=S256" in authorization_url

        # When alice signs in and approves consent in Chromium, which lands on the script's callback
        visit = sign_in_in_chromium(authorization_url, redirect_uri, artifacts)
        result = script.wait_for("result")
    finally:
        script.stop()

    # Then she saw the sign-in and consent pages (screenshotted), and the SDK got a Bearer token for them
    assert visit.kinds == ["sign-in", "consent"], visit.kinds
    assert "TypeScript SDK (e2e)" in visit.page("consent").text
    screenshots = sorted(path.name for path in artifacts.glob("*.png"))
    assert any("sign-in" in name for name in screenshots) and any("consent" in name for name in screenshots)
    assert result["client_id"] and result["token_type"].lower() == "bearer"

    # And with it, the SDK lists the upstream's tools and calls echo through the gateway
    assert "echo" in result["tools"]
    assert result["echo"].get("isError") in (None, False), result["echo"]
    assert [item.get("text") for item in result["echo"]["content"]] == [ECHO_TEXT]

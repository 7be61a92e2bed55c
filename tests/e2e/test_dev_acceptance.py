"""Acceptance of the foundation issue, against the dev server: an MCP client pointed at the demo route is challenged
with 401, and the official ``mcp`` SDK's OAuth discovery (PRM, then authorization-server metadata) succeeds.
``make dev`` itself prints what a user needs and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    create_oauth_metadata_request,
    handle_auth_metadata_response,
)
from mcp.shared.auth import OAuthClientMetadata

from gateway.runtime import Runtime
from infra.devserver import REPO_ROOT, DevServer
from tests.support.mcp_client import MemoryStorage, run_async

pytestmark = pytest.mark.e2e

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "acceptance-test", "version": "1.0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def route_url(server: DevServer) -> str:
    return f"{server.url}/demo/echo/mcp"


def test_a_request_without_a_token_is_challenged(dev_server: DevServer) -> None:
    # When an MCP client sends initialize to the demo route without a token
    response = httpx.post(route_url(dev_server), json=INITIALIZE, headers=MCP_HEADERS)

    # Then it gets 401 with a challenge naming the route's PRM and scope (MCP authorization, RFC 9728 §5.1)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{dev_server.url}/.well-known/oauth-protected-resource/demo/echo/mcp", scope="mcp"'
    )


class _ReachedAuthorization(Exception):
    """Raised by the redirect handler: discovery and registration are done, a browser would open now."""


async def _run_sdk_oauth_flow(server_url: str) -> tuple[OAuthClientProvider, list[str], BaseException]:
    async def redirect_handler(authorization_url: str) -> None:
        raise _ReachedAuthorization(authorization_url)

    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(
            client_name="acceptance-test",
            redirect_uris=["http://127.0.0.1:33418/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
    )
    requests: list[str] = []

    async def record(request: httpx2.Request) -> None:
        requests.append(f"{request.method} {request.url}")

    async with httpx2.AsyncClient(auth=provider, event_hooks={"request": [record]}, timeout=30) as client:
        try:
            await client.post(server_url, json=INITIALIZE, headers=MCP_HEADERS)
        except (OAuthFlowError, _ReachedAuthorization) as stopped:
            return provider, requests, stopped
    raise AssertionError("the SDK's OAuth flow did not stop at registration or authorization")


def test_the_sdk_client_discovers_prm_and_authorization_server_metadata(dev_server: DevServer) -> None:
    # Given the official MCP SDK client's OAuth provider pointed at the demo route
    url = route_url(dev_server)
    issuer = f"{dev_server.url}/demo/echo"

    # When it connects, and runs its authorization flow until it must register a client or open a browser
    provider, requests, _stopped = run_async(lambda: _run_sdk_oauth_flow(url))

    # Then it followed the challenge to the route's PRM, then to the route's authorization-server metadata
    assert requests[:3] == [
        f"POST {url}",
        f"GET {dev_server.url}/.well-known/oauth-protected-resource/demo/echo/mcp",
        f"GET {dev_server.url}/.well-known/oauth-authorization-server/demo/echo",
    ]
    prm = provider.context.protected_resource_metadata
    assert prm is not None
    assert str(prm.resource) == url
    assert [str(server) for server in prm.authorization_servers] == [issuer]
    metadata = provider.context.oauth_metadata
    assert metadata is not None
    assert str(metadata.issuer) == issuer
    assert str(metadata.authorization_endpoint) == f"{issuer}/authorize"
    assert str(metadata.token_endpoint) == f"{issuer}/token"
    assert str(metadata.registration_endpoint) == f"{issuer}/register"
    # And its next step was registering at the discovered registration endpoint
    assert requests[3] == f"POST {issuer}/register"


def test_every_metadata_url_the_sdk_may_try_names_the_routes_issuer(dev_server: DevServer) -> None:
    # Given the discovery URLs the SDK builds for the route's issuer (RFC 8414 and both OIDC forms)
    issuer = f"{dev_server.url}/demo/echo"
    urls = build_oauth_authorization_server_metadata_discovery_urls(issuer, route_url(dev_server))
    assert len(urls) == 3

    async def fetch_all() -> list[str]:
        issuers = []
        async with httpx2.AsyncClient(timeout=30) as client:
            for url in urls:
                # When the SDK fetches and parses each of them
                response = await client.send(create_oauth_metadata_request(url))
                ok, metadata = await handle_auth_metadata_response(response)
                assert ok, url
                assert metadata is not None, url
                issuers.append(str(metadata.issuer))
        return issuers

    # Then each one describes the route's issuer
    assert run_async(fetch_all) == [issuer] * 3


def test_calls_with_a_valid_token_reach_the_demo_upstream_concurrently(
    dev_server: DevServer, gateway_runtime: Runtime
) -> None:
    # Given an access token for the demo route backed by an active grant, as the token endpoint issues it
    from infra.placeholders import grant_backed_token

    runtime = gateway_runtime
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice", client_id="acceptance-test")
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-06-18"}

    def call(number: int) -> tuple[int, Any]:
        request = {
            "jsonrpc": "2.0",
            "id": number,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": f"hello {number}"}},
        }
        response = httpx.post(route_url(dev_server), json=request, headers=headers, timeout=30)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            (message,) = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
        else:
            message = response.json()
        return response.status_code, message

    # When several MCP clients call the echo tool at the same time (so several containers serve them)
    results: dict[int, tuple[int, Any]] = {}
    threads = [threading.Thread(target=lambda n=n: results.update({n: call(n)})) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then each gets its own echo, relayed from the demo upstream
    assert sorted(results) == [0, 1, 2, 3]
    for number, (status, message) in results.items():
        assert status == 200, message
        assert message["id"] == number
        assert message["result"]["content"] == [{"type": "text", "text": f"hello {number}"}]


# --- make dev -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_make_dev_prints_the_route_and_stops_cleanly_on_ctrl_c(tmp_path: Path, free_port: Callable[[], int]) -> None:
    # Given free ports and a private state file, and none of this session's function environment
    dev_port, upstream_port = free_port(), free_port()
    state_file = tmp_path / "state.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GATEWAY_", "AWS_"))}
    env.update(DEV_PORT=str(dev_port), UPSTREAM_PORT=str(upstream_port), DEV_STATE_FILE=str(state_file))

    # When `python -m infra.dev` (what `make dev` runs) starts
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.dev"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        route = f"http://127.0.0.1:{dev_port}/demo/echo/mcp"
        claude_line = f"claude mcp add --transport http echo {route}"
        deadline = time.monotonic() + 90
        while not any(claude_line in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.1)

        # Then it printed the route URL, the ready-to-paste `claude mcp add` line and the dev login
        output = "".join(lines)
        assert route in output
        assert "alice / alice-password" in output
        # And it serves the route and describes itself for `make invoke`
        assert httpx.post(route, json=INITIALIZE, headers=MCP_HEADERS).status_code == 401
        state = json.loads(state_file.read_text())
        assert state["dev_server_url"] == f"http://127.0.0.1:{dev_port}"

        # When it gets Ctrl-C
        process.send_signal(signal.SIGINT)

        # Then it exits 0 and removes its state file
        assert process.wait(timeout=30) == 0, "".join(lines)
        assert not state_file.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

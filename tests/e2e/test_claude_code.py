"""Claude Code itself (its CLI from npm, tests/support/claude_code.py) against the gateway, the way a user adds a
server: ``claude mcp add --transport http``, ``claude mcp list``, ``claude mcp login`` (its own PKCE, ``resource``,
loopback listener and code exchange; the sign-in and consent pages in headless Chromium), then tools listed and
called through ``claude -p``'s stream-json control requests — no account, no model turn, nothing beyond 127.0.0.1.

Two ways Claude Code identifies itself, each in a test of its own, against one gateway (its own process, buffered
deployment): a pre-registered public client (``--client-id`` and ``--callback-port``, for organisations that forbid
dynamic registration), and its client ID metadata document (``MCP_OAUTH_CLIENT_METADATA_URL`` pointed at a local
https copy, since its real one at claude.ai cannot be fetched here; the gateway advertises CIMD, so Claude Code uses
the document without registering).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.demo_upstream import DemoUpstream
from tests.support.browser import chromium
from tests.support.claude_code import ClaudeCode, install
from tests.support.mcp_client import run_async
from tests.support.sign_in import BrowserVisit, User, authorize_in_browser
from tests.unit.net.https_server import Reply

if TYPE_CHECKING:  # pytest loads the conftest itself; importing it again would run it twice
    from tests.e2e.conftest import CimdHost

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = User("alice", "alice-password")
PREREGISTERED_CLIENT = "claude-code-e2e"
PREREGISTERED_NAME = "Claude Code (pre-registered)"
METADATA_PATH = "/oauth/claude-code-client-metadata"


@dataclass(frozen=True)
class Gateway:
    url: str
    callback_port: int  # the fixed loopback port the pre-registered client's redirect URI names
    cimd: CimdHost

    @property
    def echo(self) -> str:
        return f"{self.url}/demo/echo/mcp"

    @property
    def metadata_url(self) -> str:
        return self.cimd.url(METADATA_PATH)


def _config(upstream_url: str, callback_port: int) -> dict[str, Any]:
    from tests.e2e.conftest import isolated_config

    config = isolated_config(upstream_url, "http://127.0.0.1:1")
    workspaces = config["workspaces"]
    assert isinstance(workspaces, dict)
    del workspaces["corp"]  # no identity provider of its own: the dev login of workspace demo is enough here
    demo = workspaces["demo"]
    demo["clients"] = [
        {
            "client_id": PREREGISTERED_CLIENT,
            "client_name": PREREGISTERED_NAME,
            "redirect_uris": [f"http://localhost:{callback_port}/callback"],
        }
    ]
    return config


@pytest.fixture(scope="module")
def gateway(demo_upstream: DemoUpstream, cimd_host: CimdHost, free_port: Callable[[], int]) -> Iterator[Gateway]:
    from tests.e2e.conftest import gateway_process

    install()
    port, callback_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="e2e-claude-code-") as directory:
        process = gateway_process(
            _config(demo_upstream.url, callback_port),
            Path(directory),
            port,
            env={"SSL_CERT_FILE": str(cimd_host.ca_bundle)},  # trusts the CIMD host's throwaway certificate
        )
        try:
            yield Gateway(process.wait_for("ready ", "the gateway for Claude Code"), callback_port, cimd_host)
        finally:
            process.stop()


@pytest.fixture
def claude(tmp_path: Path) -> ClaudeCode:
    (tmp_path / "home").mkdir()
    (tmp_path / "project").mkdir()
    return ClaudeCode(tmp_path / "home", tmp_path / "project")


def _sign_in_through_the_browser(
    claude: ClaudeCode, server: str, artifacts: Path
) -> tuple[dict[str, str], BrowserVisit, str]:
    """``claude mcp login``: alice signs in and approves in Chromium; returns the authorization request's
    parameters, what the browser saw, and the CLI's output once it ended."""
    with claude.login(server) as login:
        query = {name: values[0] for name, values in parse_qs(urlsplit(login.authorization_url).query).items()}

        async def in_browser() -> BrowserVisit:
            async with chromium(artifacts) as browser:
                return await authorize_in_browser(
                    browser, login.authorization_url, redirect_uri=query["redirect_uri"], user=ALICE
                )

        visit = run_async(in_browser)
        code, output = login.finish()
    assert code == 0, output
    return query, visit, output


def _tools_and_call(claude: ClaudeCode, server: str, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """One ``claude -p`` session: call the echo tool, then ask for the servers' status (by then connected)."""
    answers = claude.control(
        [
            {"subtype": "mcp_call", "tool": f"mcp__{server}__echo", "arguments": {"text": text}},
            {"subtype": "mcp_status"},
        ]
    )
    call, status = answers["req-0"], answers["req-1"]
    assert call["subtype"] == "success", call
    assert status["subtype"] == "success", status
    (found,) = [entry for entry in status["response"]["mcpServers"] if entry["name"] == server]
    return call["response"], found


def _added_and_listed(claude: ClaudeCode, *add: str) -> None:
    added = claude.run("mcp", "add", "--transport", "http", *add)
    assert added.returncode == 0 and "Added HTTP MCP server" in added.stdout, added.stdout + added.stderr
    listed = claude.run("mcp", "list")
    assert "Needs authentication" in listed.stdout, listed.stdout + listed.stderr


def test_claude_code_with_a_preregistered_client_signs_in_lists_and_calls(
    gateway: Gateway, claude: ClaudeCode, artifacts: Path
) -> None:
    started = time.monotonic()
    # Given Claude Code with the gateway's route added under a pre-registered client ID and callback port
    _added_and_listed(
        claude, "--client-id", PREREGISTERED_CLIENT, "--callback-port", str(gateway.callback_port), "echo", gateway.echo
    )

    # When the user runs `claude mcp login echo` and signs in and approves in the browser it opens
    query, visit, output = _sign_in_through_the_browser(claude, "echo", artifacts)

    # Then Claude Code ran its own authorization: the pre-registered client, PKCE S256, the route as resource, its
    # fixed loopback callback
    assert query["client_id"] == PREREGISTERED_CLIENT and query["code_challenge_method"] == "S256"
    assert query["resource"] == gateway.echo
    assert query["redirect_uri"] == f"http://localhost:{gateway.callback_port}/callback"
    assert visit.kinds == ["sign-in", "consent"]
    assert f"{PREREGISTERED_NAME} wants to use Echo (demo) as you" in visit.page("consent").text
    assert visit.errors_on(gateway.url) == []
    assert 'Authenticated with "echo"' in output
    # And `claude mcp list` now connects
    listed = claude.run("mcp", "list")
    assert "echo" in listed.stdout and "Connected" in listed.stdout, listed.stdout
    # And a tool call through the gateway works, with no model turn
    result, status = _tools_and_call(claude, "echo", "hello from Claude Code")
    assert result["structuredContent"] == {"result": "hello from Claude Code"}
    assert status["status"] == "connected" and status["serverInfo"]["name"] == "demo-upstream"
    print(f"Claude Code, pre-registered client: {time.monotonic() - started:.1f} s")


def test_claude_code_identified_by_its_client_metadata_document(
    gateway: Gateway, claude: ClaudeCode, artifacts: Path
) -> None:
    started = time.monotonic()
    # Given a local https copy of Claude Code's client ID metadata document, and Claude Code pointed at it
    document = {
        "client_id": gateway.metadata_url,
        "client_name": "Claude Code",
        "client_uri": "https://claude.com/product/claude-code",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    gateway.cimd.https.replies[METADATA_PATH] = Reply(
        200, json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    claude.extra_env["MCP_OAUTH_CLIENT_METADATA_URL"] = gateway.metadata_url
    _added_and_listed(claude, "echo", gateway.echo)

    # When the user logs in
    query, visit, output = _sign_in_through_the_browser(claude, "echo", artifacts)

    # Then Claude Code used the document's URL as its client ID (the gateway advertises CIMD), with a loopback
    # callback on a port of its choosing, and the gateway fetched the document and named the client after it
    assert query["client_id"] == gateway.metadata_url and query["resource"] == gateway.echo
    assert urlsplit(query["redirect_uri"]).hostname == "localhost"
    assert gateway.cimd.https.hits.get(METADATA_PATH, 0) >= 1
    consent = visit.page("consent").text
    assert "Claude Code wants to use Echo (demo) as you" in consent and gateway.metadata_url in consent
    assert 'Authenticated with "echo"' in output
    # And tools are called through the gateway
    result, status = _tools_and_call(claude, "echo", "hello via Claude Code's metadata document")
    assert result["structuredContent"] == {"result": "hello via Claude Code's metadata document"}
    assert status["status"] == "connected"
    print(f"Claude Code, client ID metadata document: {time.monotonic() - started:.1f} s")

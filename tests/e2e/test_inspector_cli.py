"""The MCP Inspector CLI (npm ``@modelcontextprotocol/inspector``, ``--cli`` mode) against the gateway.

The Inspector's own OAuth flow needs a person at a browser, so the token comes from the raw-HTTP flow
(:func:`tests.support.oauth_http.obtain_token`: registration, authorization with PKCE, dev login, consent, code
exchange) and is handed to the CLI with its ``--header`` option, as a user would paste one. The CLI needs
Node >= 22.19: it runs on the Node 22 of ``tests/fixtures/node22``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.devserver import DevServer
from tests.support.node_tools import INSPECTOR_CLI, INSPECTOR_DIR, NODE22, ensure_installed
from tests.support.oauth_http import obtain_token, route_url

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CLI_TIMEOUT_S = 60


def inspector(url: str, *args: str, token: str | None, catalog: Path) -> subprocess.CompletedProcess[str]:
    """``mcp-inspector --cli <url> --transport http [--header "Authorization: Bearer …"] <args>``, with a
    throwaway server catalog instead of ~/.mcp-inspector/mcp.json."""
    command = [str(NODE22), str(INSPECTOR_CLI), "--cli", url, "--transport", "http", *args]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    return subprocess.run(
        command,
        cwd=INSPECTOR_DIR,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={
            "PATH": str(NODE22.parent) + ":/usr/bin:/bin",
            "HOME": str(catalog.parent),
            "NO_COLOR": "1",
            "MCP_CATALOG_PATH": str(catalog),
            "BROWSER": "none",
        },
    )


def json_output(completed: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}"
    data = json.loads(completed.stdout)
    assert isinstance(data, dict), completed.stdout
    return data


def test_the_inspector_cli_lists_and_calls_tools_with_a_token_from_the_oauth_flow(
    dev_server: DevServer, tmp_path: Path
) -> None:
    # Given a token for the demo route, obtained through the real OAuth flow, and the Inspector CLI on Node 22
    ensure_installed(INSPECTOR_DIR)
    tokens = obtain_token(dev_server.url, "demo", "echo", client_name="MCP Inspector CLI (token pasted)")
    url = route_url(dev_server.url, "demo", "echo")
    catalog = tmp_path / "catalog.json"

    # When the CLI lists the route's tools with the token in its --header option
    listed = json_output(inspector(url, "--method", "tools/list", token=tokens.access_token, catalog=catalog))

    # Then it sees the upstream's echo tool, with its input schema
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert "echo" in tools, listed
    assert "text" in tools["echo"]["inputSchema"]["properties"]

    # When it calls echo through the gateway
    called = json_output(
        inspector(
            url,
            *("--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=hello from the inspector"),
            token=tokens.access_token,
            catalog=catalog,
        )
    )

    # Then the upstream's answer comes back unchanged
    assert called.get("isError") in (None, False), called
    assert [item.get("text") for item in called["content"]] == ["hello from the inspector"]


def test_the_inspector_cli_is_refused_without_a_valid_token(dev_server: DevServer, tmp_path: Path) -> None:
    # Given the Inspector CLI holding a token the gateway did not issue
    ensure_installed(INSPECTOR_DIR)
    url = route_url(dev_server.url, "demo", "echo")

    # When it lists tools with it
    completed = inspector(url, "--method", "tools/list", token="not-a-gateway-token", catalog=tmp_path / "c.json")

    # Then it lists nothing: the gateway's 401 challenge makes it want its own (interactive) OAuth flow
    assert completed.returncode != 0
    error = json.loads((completed.stdout or completed.stderr).strip().splitlines()[-1])["error"]
    assert error["code"] == "auth_required", error

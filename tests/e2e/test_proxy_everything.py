"""The proxy in front of a real MCP server: ``@modelcontextprotocol/server-everything`` (npm, streamable HTTP, with
sessions and SSE resumability) behind route ``demo/everything`` of the session's dev server. The official ``mcp``
Python SDK client talks to it directly and through the gateway in the same test, and the results must match:
tools, resources, prompts, completion and logging. A second user cannot use the first user's session.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import PromptReference

from gateway.runtime import Runtime
from infra.devserver import REPO_ROOT, DevServer
from infra.placeholders import grant_backed_token
from tests.support.mcp_client import run_async

pytestmark = pytest.mark.e2e

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "everything"
SERVER_SCRIPT = FIXTURE / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
HOST = "127.0.0.1"
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def everything(everything_port: int) -> Iterator[str]:
    """server-everything in streamable HTTP mode on 127.0.0.1 (the preload keeps it off other interfaces)."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed")
    if not SERVER_SCRIPT.is_file():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=FIXTURE, check=True, timeout=300)
    env = {"PATH": os.environ.get("PATH", ""), "PORT": str(everything_port)}
    process = subprocess.Popen(
        ["node", "-r", "./loopback.cjs", str(SERVER_SCRIPT), "streamableHttp"],
        cwd=FIXTURE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((HOST, everything_port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server-everything did not start on {HOST}:{everything_port}")
                time.sleep(0.1)
        yield f"http://{HOST}:{everything_port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def token_for(runtime: Runtime, user: str) -> str:
    route = runtime.routes.get("demo", "everything")
    assert route is not None, "tests/conftest.py adds route demo/everything"
    return grant_backed_token(runtime, route, subject=user, client_id="e2e-everything")


def dump(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True)


async def exercise(url: str, token: str | None) -> dict[str, Any]:
    """What an MCP client does with a server, as the SDK sees the results."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
    ):
        tools = await client.list_tools()
        echo = await client.call_tool("echo", {"message": "through the gateway"})
        total = await client.call_tool("get-sum", {"a": 2, "b": 40})
        resources = await client.list_resources()
        first = resources.resources[0]
        read = await client.read_resource(str(first.uri))
        prompts = await client.list_prompts()
        prompt = await client.get_prompt("args-prompt", {"city": "Lisbon", "state": "Lisboa"})
        completion = await client.complete(
            PromptReference(type="ref/prompt", name="completable-prompt"), {"name": "department", "value": "S"}
        )
        logging_level = await client.set_logging_level("debug")
        return {
            "tools": sorted(tool.name for tool in tools.tools),
            "echo": dump(echo),
            "sum": dump(total),
            "resources": [dump(resource) for resource in resources.resources],
            "read": dump(read),
            "prompts": sorted(prompt.name for prompt in prompts.prompts),
            "prompt": dump(prompt),
            "completion": dump(completion),
            "set_level": dump(logging_level),
        }


@pytest.mark.filterwarnings("ignore:The logging capability is deprecated")  # still part of 2025-11-25, which we test
def test_the_sdk_client_gets_through_the_gateway_what_it_gets_directly(
    gateway_runtime: Runtime, everything: str, dev_server: DevServer
) -> None:
    # Given server-everything, reached directly and through the gateway with alice's token
    token = token_for(gateway_runtime, "alice")

    # When the official SDK client lists and uses tools, resources, prompts, completion and logging on both
    direct = run_async(lambda: exercise(everything, None))
    proxied = run_async(lambda: exercise(f"{dev_server.url}/demo/everything/mcp", token))

    # Then the results are the same
    assert direct["echo"]["content"] == [{"type": "text", "text": "Echo: through the gateway"}]
    assert "get-sum" in direct["tools"] and "completable-prompt" in direct["prompts"]
    assert direct["completion"]["completion"]["values"] == ["Sales", "Support"]
    assert direct["resources"] and direct["read"]["contents"]
    assert proxied == direct


async def negotiate(url: str, token: str | None) -> tuple[str | None, list[str]]:
    """The SDK's default mode: probe ``server/discover`` (2026-07-28), fall back to ``initialize``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), cache=None) as client,
    ):
        tools = await client.list_tools()
        return client.session.protocol_version, sorted(tool.name for tool in tools.tools)


def test_version_negotiation_goes_the_same_way_through_the_gateway(
    gateway_runtime: Runtime, everything: str, dev_server: DevServer
) -> None:
    token = token_for(gateway_runtime, "alice")
    direct = run_async(lambda: negotiate(everything, None))
    proxied = run_async(lambda: negotiate(f"{dev_server.url}/demo/everything/mcp", token))
    assert proxied == direct


def test_a_stateless_upstream_speaks_2026_07_28_through_the_gateway(
    dev_server: DevServer, gateway_runtime: Runtime
) -> None:
    # The demo upstream (mcp SDK, stateless) serves the sessionless 2026-07-28 revision: no session id to wrap.
    runtime = gateway_runtime
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = grant_backed_token(runtime, route, subject="alice")
    version, tools = run_async(lambda: negotiate(f"{dev_server.url}/demo/echo/mcp", token))
    assert tools == ["echo"]
    assert version == "2026-07-28"


def _initialize(url: str, token: str) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}},
    }
    return httpx.post(url, json=message, headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT}, timeout=30)


def test_a_second_user_cannot_use_the_first_users_session(
    gateway_runtime: Runtime, everything: str, dev_server: DevServer
) -> None:
    # Given alice's session with server-everything through the gateway
    url = f"{dev_server.url}/demo/everything/mcp"
    alice, bob = token_for(gateway_runtime, "alice"), token_for(gateway_runtime, "bob")
    initialized = _initialize(url, alice)
    assert initialized.status_code == 200
    session_id = initialized.headers["mcp-session-id"]
    list_tools = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}

    def post(token: str) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": ACCEPT,
            "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": "2025-11-25",
        }
        return httpx.post(url, json=list_tools, headers=headers, timeout=30)

    # When bob presents it
    stolen = post(bob)

    # Then bob gets 404 (a session the gateway does not know for him), while alice's session works
    assert stolen.status_code == 404
    assert post(alice).status_code == 200

    # And DELETE ends alice's session upstream: it is then unknown there, which she sees as 404
    headers = {"Authorization": f"Bearer {alice}", "Mcp-Session-Id": session_id, "MCP-Protocol-Version": "2025-11-25"}
    assert httpx.delete(url, headers=headers, timeout=30).status_code == 200
    assert post(alice).status_code in (400, 404)

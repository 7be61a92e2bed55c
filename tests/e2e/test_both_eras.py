"""Both protocol eras on one URL (issue 24 item 4): the official Python SDK as a 2025-11-25 client and as a
2026-07-28 client, at the same time, through the gateway's proxy app (served over HTTP by uvicorn, in-memory
stores), against a session-era upstream (tests/support/mini_mcp.py: ``initialize`` and sessions only) and a modern
one (the demo upstream, built on the official SDK, which speaks both eras) — each on a plain route, and both behind
one virtual route. Every pair lists and calls tools.

On a plain route the gateway relays: the client and the upstream settle the revision between them (a 2026-07-28
SDK client probes ``server/discover``, and a session-era upstream makes it fall back to ``initialize``: the
discover-then-initialize sequence Claude Code sends too). A virtual route speaks each revision itself, to the client
and to each upstream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.asgi_thread import AsgiThread, listening_socket
from infra.demo_upstream import DemoUpstream
from infra.placeholders import grant_backed_token
from tests.support.mcp_client import run_async
from tests.support.mini_mcp import MiniMcp, serve
from tests.support.runtime import example_config_data, memory_runtime

pytestmark = pytest.mark.e2e

STATELESS = "2026-07-28"


@dataclass
class Eras:
    runtime: Runtime
    gateway: AsgiThread
    legacy: MiniMcp

    def url(self, server: str) -> str:
        return f"http://127.0.0.1:{self.gateway.port}/demo/{server}/mcp"

    def token(self, server: str) -> str:
        route = self.runtime.routes.get("demo", server)
        assert route is not None
        return grant_backed_token(self.runtime, route, subject="alice")


@pytest.fixture(scope="module")
def eras(demo_upstream: DemoUpstream) -> Iterator[Eras]:
    legacy = MiniMcp("legacy", ["lookup"])
    legacy_thread = serve(legacy)
    data = example_config_data()
    servers = data["workspaces"]["demo"]["servers"]
    servers["modern"] = {"upstream": demo_upstream.url, "timeout_seconds": 10}
    servers["legacy"] = {"upstream": legacy_thread.url, "timeout_seconds": 10}
    servers["both"] = {
        "timeout_seconds": 10,
        "upstreams": {"modern": {"url": demo_upstream.url}, "legacy": {"url": legacy_thread.url}},
    }
    runtime = memory_runtime(parse_config(data))
    gateway = AsgiThread(create_app(runtime), listening_socket(), "gateway proxy").start()
    try:
        yield Eras(runtime, gateway, legacy)
    finally:
        gateway.stop()
        legacy_thread.stop()


async def _session(eras: Eras, server: str, mode: str, calls: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One SDK client session: the revision it settled on, the tools it listed, what each call returned."""
    headers = {"Authorization": f"Bearer {eras.token(server)}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(eras.url(server), http_client=http), mode=mode, cache=None) as client,
    ):
        tools = sorted(tool.name for tool in (await client.list_tools()).tools)
        texts = []
        for name, arguments in calls:
            result = await client.call_tool(name, arguments)
            assert not result.is_error, result
            texts.append(result.content[0].text)  # type: ignore[union-attr]
        return {"version": client.protocol_version, "tools": tools, "texts": texts}


async def _all_pairs(eras: Eras) -> dict[tuple[str, str], dict[str, Any]]:
    calls = {
        "modern": [("echo", {"text": "plain modern"})],
        "legacy": [("lookup", {"q": "plain legacy"})],
        "both": [("modern_echo", {"text": "virtual modern"}), ("legacy_lookup", {"q": "virtual legacy"})],
    }
    pairs = [(server, mode) for server in calls for mode in ("legacy", "auto")]
    answers = await asyncio.gather(*(_session(eras, server, mode, calls[server]) for server, mode in pairs))
    return dict(zip(pairs, answers, strict=True))


def test_clients_of_both_eras_at_once_against_upstreams_of_both_eras_plain_and_virtual(eras: Eras) -> None:
    started = time.monotonic()
    sessions = run_async(lambda: _all_pairs(eras))

    # A 2025-11-25 client speaks its revision everywhere
    for server in ("modern", "legacy", "both"):
        assert sessions[(server, "legacy")]["version"] == "2025-11-25", server
    # A 2026-07-28 client speaks it to the modern upstream and to the virtual route (which bridges to the
    # session-era upstream); on the plain route of the session-era upstream it falls back to initialize
    assert sessions[("modern", "auto")]["version"] == STATELESS
    assert sessions[("both", "auto")]["version"] == STATELESS
    assert sessions[("legacy", "auto")]["version"] == "2025-11-25"
    # Every pair listed and called
    for mode in ("legacy", "auto"):
        assert sessions[("modern", mode)]["texts"] == ["plain modern"]
        assert sessions[("legacy", mode)]["texts"] == ['legacy:lookup:{"q": "plain legacy"}']
        assert sessions[("both", mode)]["tools"] == ["legacy_lookup", "modern_echo"]
        assert sessions[("both", mode)]["texts"] == ["virtual modern", 'legacy:lookup:{"q": "virtual legacy"}']
    # The session-era upstream was called in its own revision, whoever called (it saw 2026-07-28 only in probes,
    # which it refused)
    calls = [headers for method, _, headers in eras.legacy.seen if method == "tools/call"]
    assert len(calls) == 4 and {headers.get("mcp-protocol-version") for headers in calls} == {"2025-11-25"}
    print(f"both eras, six sessions at once: {time.monotonic() - started:.1f} s")


def test_discover_then_initialize_on_a_plain_route_to_a_modern_upstream(eras: Eras) -> None:
    # Claude Code 2.1 sends server/discover and then initialize on the same URL: both reach the upstream, answered
    url = eras.url("modern")
    headers = {"Authorization": f"Bearer {eras.token('modern')}", "Accept": "application/json, text/event-stream"}
    meta = {
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "probe", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    modern = {**headers, "MCP-Protocol-Version": STATELESS, "Mcp-Method": "server/discover"}
    discover = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}
    client = {"name": "probe", "version": "1"}
    initialize = {
        "jsonrpc": "2.0", "id": 2, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client},
    }  # fmt: skip
    with httpx.Client(timeout=30, trust_env=False) as http:
        discovered = http.post(url, json=discover, headers=modern)
        initialized = http.post(url, json=initialize, headers=headers)
    assert discovered.status_code == 200 and STATELESS in _answer(discovered)["result"]["supportedVersions"]
    assert initialized.status_code == 200 and _answer(initialized)["result"]["protocolVersion"] == "2025-11-25"


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response of a JSON or SSE answer."""
    if response.headers["content-type"].startswith("text/event-stream"):
        (data,) = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data))
    return dict(response.json())

"""``make bench`` part ``virtual``: what a virtual route costs (docs/performance.md, "Virtual routes").

Three upstreams whose ``tools/list`` takes 20, 40 and 60 ms (:mod:`infra.bench_support.slow_upstreams`, a process of
their own) behind one virtual route of a dev server: its merged ``tools/list`` should take about as long as the
slowest upstream (they are asked concurrently), not the sum. And ``tools/call`` through a virtual route against the
same call through a plain route to the same upstream, interleaved, measured in one run. Then the gateway's own CPU
per warm call on each route, and the upstream requests for calls of a hashed tool name
(:mod:`infra.bench_support.virtual_cpu`).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

DELAYS_MS = (20, 40, 60)
ACCEPT = "application/json, text/event-stream"


def _start_upstreams(root: Path) -> tuple[subprocess.Popen[str], dict[int, str]]:
    command = [sys.executable, "-m", "infra.bench_support.slow_upstreams", *map(str, DELAYS_MS)]
    process = subprocess.Popen(command, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    urls: dict[int, str] = {}
    while len(urls) < len(DELAYS_MS):
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the slow upstreams did not start")
        _, delay, url = line.split()
        urls[int(delay)] = url
    return process, urls


def _config(urls: Mapping[int, str]) -> dict[str, Any]:
    fastest = urls[min(urls)]
    return {
        "workspaces": {
            "bench": {
                "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "alice-password"}]},
                "servers": {
                    "virtual": {"upstreams": {f"u{delay}": {"url": url} for delay, url in urls.items()}},
                    "plain": {"upstream": fastest},
                    "single": {"upstreams": {"fast": {"url": fastest, "prefix": ""}}},
                },
            }
        }
    }


def _post(http: httpx.Client, url: str, token: str, message: dict[str, Any], session: str | None) -> httpx.Response:
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": "2025-11-25"}
    if token:  # the upstreams directly take none
        headers["Authorization"] = f"Bearer {token}"
    if session:
        headers["Mcp-Session-Id"] = session
    response = http.post(url, json=message, headers=headers)
    response.raise_for_status()
    return response


def _timed(function: Callable[..., object], *arguments: Any) -> float:
    started = time.perf_counter()
    function(*arguments)
    return (time.perf_counter() - started) * 1000


def measure_virtual(template: dict[str, Any], env: Mapping[str, str], root: Path, lists: int, calls: int) -> str:
    from gateway.runtime import Runtime
    from infra.devserver import start_dev_server
    from infra.placeholders import grant_backed_token

    process, urls = _start_upstreams(root)
    try:
        with tempfile.TemporaryDirectory(prefix="mcp-gateway-bench-virtual-") as directory:
            config_path = Path(directory) / "gateway.yaml"
            config_path.write_text(yaml.safe_dump(_config(urls)), encoding="utf-8")
            server_env = {**env, "GATEWAY_CONFIG": str(config_path)}
            server = start_dev_server(template, server_env)
            try:
                runtime = Runtime.from_environment({**os.environ, **server_env})  # the same public base URL
                tokens = {}
                for name in ("virtual", "plain", "single"):
                    route = runtime.routes.get("bench", name)
                    assert route is not None
                    tokens[name] = grant_backed_token(runtime, route, subject="alice")
                latency = _measure(server.url, urls, tokens, lists, calls)
            finally:
                server.stop()
            from infra.bench_support.virtual_cpu import measure_cpu, measure_hashed_calls

            cpu = measure_cpu(urls, Path(directory), calls * 5)
            hashed = measure_hashed_calls(Path(directory))
            return f"{latency}\n\n{cpu}\n\n{hashed}"
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=10)


def _measure(base: str, urls: Mapping[int, str], tokens: Mapping[str, str], lists: int, calls: int) -> str:
    initialize = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench"}},
    }
    tools_list = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    with httpx.Client(timeout=30, trust_env=False) as http:
        sessions = {}
        for name in tokens:
            url = f"{base}/bench/{name}/mcp"
            sessions[name] = _post(http, url, tokens[name], initialize, None).headers.get("mcp-session-id")
        # tools/list: each upstream directly, and the virtual route over all three
        direct = {
            delay: [_timed(_post, http, url, "", tools_list, None) for _ in range(lists)] for delay, url in urls.items()
        }
        virtual_url = f"{base}/bench/virtual/mcp"
        merged = [
            _timed(_post, http, virtual_url, tokens["virtual"], tools_list, sessions["virtual"]) for _ in range(lists)
        ]
        count = len(
            _post(http, virtual_url, tokens["virtual"], tools_list, sessions["virtual"]).json()["result"]["tools"]
        )
        # tools/call: the same upstream through a plain route and through a virtual route, interleaved
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "tool_0", "arguments": {"text": "x"}},
        }
        prefixed = {**call, "params": {"name": f"u{min(urls)}_tool_0", "arguments": {"text": "x"}}}
        timings: dict[str, list[float]] = {"plain": [], "single": [], "virtual": []}
        messages = {"plain": call, "single": call, "virtual": prefixed}
        for _ in range(calls):
            for name in timings:
                url = f"{base}/bench/{name}/mcp"
                message = messages[name]
                timings[name].append(_timed(_post, http, url, tokens[name], message, sessions[name]))
    p50 = statistics.median
    slowest, total = max(p50(v) for v in direct.values()), sum(p50(v) for v in direct.values())
    rows = [f"| `{delay}` ms upstream, directly | {p50(values):.1f} |" for delay, values in sorted(direct.items())]
    rows.append(f"| virtual route over all three ({count} tools merged) | {p50(merged):.1f} |")
    added = p50(timings["single"]) - p50(timings["plain"])
    added3 = p50(timings["virtual"]) - p50(timings["plain"])
    return (
        f"`tools/list`, p50 of {lists} requests each, one client in the benchmark's process, the dev server in the "
        f"same process, the upstreams in another (their `tools/list` sleeps {', '.join(map(str, DELAYS_MS))} ms):\n\n"
        "| target | p50 ms |\n|---|---|\n" + "\n".join(rows) + "\n\n"
        f"The merged list took {p50(merged):.1f} ms against {slowest:.1f} ms for the slowest upstream alone and "
        f"{total:.1f} ms for the three in turn: **{p50(merged) / slowest:.2f} times the slowest** "
        f"(target about 1, {'met' if p50(merged) < total * 0.6 else 'missed'}: "
        "the upstreams are asked concurrently).\n\n"
        f"`tools/call` to the same upstream, {calls} calls per route, interleaved:\n\n"
        "| route | p50 ms |\n|---|---|\n"
        f"| plain route (`upstream:`) | {p50(timings['plain']):.2f} |\n"
        f"| virtual route with this one upstream (no prefix) | {p50(timings['single']):.2f} |\n"
        f"| virtual route over the three upstreams (prefixed name) | {p50(timings['virtual']):.2f} |\n\n"
        f"Added by the virtual route: **{added:+.2f} ms** p50 with one upstream, {added3:+.2f} ms over three "
        f"(target ≤ 0.5 ms: {'met' if max(added, added3) <= 0.5 else 'missed'})."
    )

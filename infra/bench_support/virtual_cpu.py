"""``make bench`` part ``virtual``, continued: what the gateway's own code costs per warm ``tools/call`` on a plain
route and on a virtual route, and how many upstream requests calls of a hashed tool name make.

- **CPU**: the proxy's ASGI app (the same app the function's handler wraps) is called directly from a loop in this
  process, on an in-memory runtime (no AWS SDK in the measurement: the grant read is a dictionary lookup), against
  upstreams in another process (:mod:`infra.bench_support.slow_upstreams`). This process's CPU time per call is
  the gateway's own work: token check, grant status, the one parse, the exchange and the answer. The routes are
  called interleaved, in one run.
- **Hashed names**: an upstream in this process whose ``tools/list`` is paginated and holds a tool whose name only
  fits in the hashed form; a fresh container (one client that never listed the route) calls that name 100 times.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

BASE_URL = "https://gw.example.com"
ACCEPT = "application/json, text/event-stream"
HASHED_TOOL = "find.by.tag"
Asgi = Callable[..., Any]


def _runtime(config: dict[str, Any], directory: Path, clock: Callable[[], float] = time.time) -> Any:
    """A runtime on the gateway's in-memory adapters and a local signing key (no AWS)."""
    from gateway.config import parse_config
    from gateway.runtime import Runtime
    from gateway.settings import Settings
    from gateway.tokens.access_token import AccessTokens
    from infra.memory import stores as memory
    from infra.memory.cipher import LocalTokenCipher
    from infra.memory.keys import LocalRsaKey

    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    runtime = Runtime(Settings(config=str(path), public_base_url=BASE_URL), parse_config(config), clock=clock)
    key = LocalRsaKey()
    runtime.__dict__.update(
        clients=memory.MemoryClientStore(), grants=memory.MemoryGrantStore(),
        upstream_tokens=memory.MemoryUpstreamTokenStore(), audit_log=memory.MemoryAuditLog(),
        usage_log=memory.MemoryUsageLog(),
        api_keys=memory.MemoryApiKeyStore(), rate_limiter=memory.MemoryRateLimiter(),
        shared_secret=b"bench-shared-secret-0123456789abcdef", public_keys=key,
        access_tokens=AccessTokens(key, key, runtime.settings.access_token_ttl_seconds),
        upstream_token_cipher=LocalTokenCipher(),
    )  # fmt: skip
    return runtime


async def call_asgi(app: Asgi, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app, without any HTTP server or client around it."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "https",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "server": ("gw.example.com", 443), "client": ("127.0.0.1", 40000),
    }  # fmt: skip
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status, answer_headers, chunks = 0, {}, []

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            answer_headers.update({k.decode(): v.decode() for k, v in message.get("headers", [])})
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, answer_headers, b"".join(chunks)


def initialize_body() -> bytes:
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench"}}
    return json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}).encode()


def tools_call_body(name: str, request_id: int = 2) -> bytes:
    params = {"name": name, "arguments": {"text": "x"}}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}).encode()


def measure_cpu(urls: Mapping[int, str], directory: Path, calls: int) -> str:
    """Gateway CPU per warm ``tools/call``: a plain route, a virtual route with that one upstream, and a virtual route
    over three upstreams (a prefixed name), interleaved."""
    from gateway.web.proxy.app import create_app
    from infra.placeholders import grant_backed_token

    ordered = [urls[delay] for delay in sorted(urls)]
    config = {
        "workspaces": {
            "bench": {
                "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "alice-password"}]},
                "servers": {
                    "plain": {"upstream": ordered[0]},
                    "single": {"upstreams": {"fast": {"url": ordered[0], "prefix": ""}}},
                    "virtual": {"upstreams": {f"u{n}": {"url": url} for n, url in enumerate(ordered)}},
                },
            }
        }
    }
    runtime = _runtime(config, directory)
    app = create_app(runtime)
    names = {"plain": "tool_0", "single": "tool_0", "virtual": "u0_tool_0"}
    headers: dict[str, dict[str, str]] = {}
    cpu: dict[str, list[float]] = {name: [] for name in names}

    async def run() -> None:
        for name in names:
            route = runtime.routes.get("bench", name)
            token = grant_backed_token(runtime, route, subject="alice")
            base = {"authorization": f"Bearer {token}", "accept": ACCEPT, "content-type": "application/json"}
            status, answer, _ = await call_asgi(app, f"/bench/{name}/mcp", base, initialize_body())
            assert status == 200, (name, status)
            session = answer.get("mcp-session-id")
            headers[name] = {
                **base,
                "mcp-protocol-version": "2025-11-25",
                **({"mcp-session-id": session} if session else {}),
            }
        for round_ in range(calls + 50):  # the first 50 rounds warm up
            for name, tool in names.items():
                started = time.process_time()
                status, _, body = await call_asgi(app, f"/bench/{name}/mcp", headers[name], tools_call_body(tool))
                spent = time.process_time() - started
                if status != 200 or b'"result"' not in body:
                    raise RuntimeError(f"{name}: HTTP {status} {body[:200]!r}")
                if round_ >= 50:
                    cpu[name].append(spent * 1000)

    asyncio.run(run())
    mean = {name: statistics.fmean(values) for name, values in cpu.items()}
    added = mean["single"] - mean["plain"]
    added3 = mean["virtual"] - mean["plain"]
    return (
        f"Gateway CPU per warm `tools/call` ({calls} calls per route, interleaved; the proxy's ASGI app called "
        "directly on an in-memory runtime, so no AWS SDK and no HTTP server are counted; the upstreams in another "
        "process):\n\n| route | gateway CPU ms per call (mean) |\n|---|---|\n"
        f"| plain route | {mean['plain']:.3f} |\n"
        f"| virtual route, this one upstream (no prefix) | {mean['single']:.3f} |\n"
        f"| virtual route over three upstreams (prefixed name) | {mean['virtual']:.3f} |\n\n"
        f"Added by the virtual route: **{added:+.3f} ms** CPU with one upstream, {added3:+.3f} ms over three "
        f"(target ≤ 0.3 ms: {'met' if max(added, added3) <= 0.3 else 'missed'})."
    )


def _paginated_upstream(seen: Counter[str]) -> Any:
    """An MCP upstream (no sessions) whose ``tools/list`` pages by two over seven tools, one of them hashed."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    tools = [f"tool_{n}" for n in range(6)] + [HASHED_TOOL]

    async def endpoint(request: Request) -> Response:
        message = json.loads(await request.body())
        seen[str(message.get("method"))] += 1
        if "id" not in message:
            return Response(status_code=202)
        method, params = message["method"], message.get("params") or {}
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": params["protocolVersion"], "capabilities": {"tools": {}},
                "serverInfo": {"name": "paged", "version": "1"},
            }  # fmt: skip
        elif method == "tools/list":
            start = int(params.get("cursor") or 0)
            page = [{"name": name, "inputSchema": {"type": "object"}} for name in tools[start : start + 2]]
            result = {"tools": page, **({"nextCursor": str(start + 2)} if start + 2 < len(tools) else {})}
        else:
            result = {"content": [{"type": "text", "text": params.get("name", "")}]}
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})

    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])


def measure_hashed_calls(directory: Path, calls: int = 100) -> str:
    """Upstream requests for ``calls`` calls of a hashed tool name through a container that never listed the route."""
    from gateway.virtual.catalog import exposed_name
    from gateway.web.proxy.app import create_app
    from infra.asgi_thread import AsgiThread, listening_socket
    from infra.placeholders import grant_backed_token

    seen: Counter[str] = Counter()
    upstream = AsgiThread(_paginated_upstream(seen), listening_socket(), "paginated upstream").start()
    try:
        config = {
            "workspaces": {
                "bench": {
                    "identity_provider": {"type": "dev", "users": [{"id": "alice", "password": "alice-password"}]},
                    "servers": {"virtual": {"upstreams": {"notes": {"url": upstream.url}}}},
                }
            }
        }
        runtime = _runtime(config, directory)
        app = create_app(runtime)
        hashed = exposed_name("notes", HASHED_TOOL)

        async def run() -> None:
            token = grant_backed_token(runtime, runtime.routes.get("bench", "virtual"), subject="alice")
            base = {"authorization": f"Bearer {token}", "accept": ACCEPT, "content-type": "application/json"}
            _, answer, _ = await call_asgi(app, "/bench/virtual/mcp", base, initialize_body())
            session = {"mcp-session-id": answer["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
            seen.clear()
            for n in range(calls):
                headers = {**base, **session}
                status, _, body = await call_asgi(app, "/bench/virtual/mcp", headers, tools_call_body(hashed, n))
                if status != 200 or HASHED_TOOL.encode() not in body:
                    raise RuntimeError(f"HTTP {status} {body[:200]!r}")

        asyncio.run(run())
    finally:
        upstream.stop()
    pages = -(-7 // 2)
    total = sum(seen.values())
    return (
        f"{calls} calls of a hashed tool name (`{hashed}`) through a container that never listed the route, the "
        f"upstream's `tools/list` in {pages} pages: **{total} upstream requests** ({seen['tools/call']} `tools/call`, "
        f"{seen['tools/list']} `tools/list`; target {calls} + one listing, not {calls} times {pages} pages)."
    )

"""A real HTTP server on 127.0.0.1 that records what reached it and answers like a JSON-RPC MCP server.

Used where a test must see exactly which headers crossed the gateway; end-to-end tests use real MCP servers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Recorded:
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_seconds: float = 0.0


def _app(recorded: Recorded) -> Starlette:
    async def mcp(request: Request) -> Response:
        body = await request.body()
        recorded.requests.append({"method": request.method, "headers": dict(request.headers), "body": body})
        if recorded.delay_seconds:
            await asyncio.sleep(recorded.delay_seconds)
        if recorded.status != 200:
            return Response("upstream broke", status_code=recorded.status)
        message = json.loads(body) if body else {}
        if "id" not in message:
            return Response(status_code=202)
        result = {"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message.get("params")}}
        return JSONResponse(result, headers={"Mcp-Session-Id": "upstream-session", "Set-Cookie": "u=1"})

    return Starlette(routes=[Route("/mcp", mcp, methods=["POST", "DELETE"])])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def recording_upstream() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(recorded), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/mcp", recorded
    finally:
        server.should_exit = True
        thread.join(timeout=5)

"""Minimal MCP upstreams whose ``tools/list`` takes a set time, for the virtual-route benchmark (one process).

    python slow_upstreams.py 20 40 60   # one server per delay (ms); prints "upstream <delay> <url>" for each

Each answers ``initialize`` (no session), ``tools/list`` after its delay with three tools, ``tools/call`` at once
(echoing the ``text`` argument), and notifications with 202. Runs until its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.asgi_thread import AsgiThread, listening_socket


def create_app(delay_ms: int) -> Starlette:
    async def endpoint(request: Request) -> Response:
        message: dict[str, Any] = json.loads(await request.body())
        if "id" not in message:
            return Response(status_code=202)
        method = message.get("method")
        result: dict[str, Any]
        if method == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": f"slow-{delay_ms}", "version": "1"},
            }
        elif method == "tools/list":
            await asyncio.sleep(delay_ms / 1000)
            schema = {"type": "object", "properties": {"text": {"type": "string"}}}
            result = {"tools": [{"name": f"tool_{n}", "inputSchema": schema} for n in range(3)]}
        elif method == "tools/call":
            text = str(message.get("params", {}).get("arguments", {}).get("text", ""))
            result = {"content": [{"type": "text", "text": text}], "isError": False}
        else:
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}})
        return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": result})

    return Starlette(routes=[Route("/mcp", endpoint, methods=["POST"])])


def main() -> None:
    servers = []
    for argument in sys.argv[1:]:
        delay = int(argument)
        server = AsgiThread(create_app(delay), listening_socket(), f"slow upstream {delay} ms").start()
        servers.append(server)
        print(f"upstream {delay} {server.url}", flush=True)
    sys.stdin.read()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()

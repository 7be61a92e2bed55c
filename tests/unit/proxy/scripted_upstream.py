"""A real HTTP upstream on 127.0.0.1 whose answers each test scripts, recording every request that reached it.

``ScriptedUpstream.answer`` is an async function of the Starlette request (and the recorded call number); tests set
it to play an MCP server behaving well or badly (SSE polling, HTML, redirects, 401s, slow answers...).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.recording_upstream import free_port

Answer = Callable[[Request, bytes], Awaitable[Response]]


@dataclass
class Seen:
    method: str
    headers: dict[str, str]
    body: bytes


async def json_echo(request: Request, body: bytes) -> Response:
    """A JSON-answering MCP server: results echo the params; notifications get 202."""
    import json

    message = json.loads(body) if body else {}
    if "id" not in message or "method" not in message:
        return Response(status_code=202)
    return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message.get("params")}})


@dataclass
class ScriptedUpstream:
    url: str
    answer: Answer = json_echo
    seen: list[Seen] = field(default_factory=list)

    @property
    def last(self) -> Seen:
        return self.seen[-1]


def _app(upstream: ScriptedUpstream) -> Starlette:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        upstream.seen.append(Seen(request.method, dict(request.headers), body))
        return await upstream.answer(request, body)

    return Starlette(routes=[Route("/mcp", endpoint, methods=["GET", "POST", "DELETE"])])


@contextmanager
def scripted_upstream() -> Iterator[ScriptedUpstream]:
    port = free_port()
    upstream = ScriptedUpstream(f"http://127.0.0.1:{port}/mcp")
    config: Any = uvicorn.Config(_app(upstream), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield upstream
    finally:
        server.should_exit = True
        thread.join(timeout=5)

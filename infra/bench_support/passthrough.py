"""A plain pass-through in front of an MCP upstream, for the proxy benchmark's baseline (issue 23): what any HTTP
proxy adds, so that the gateway's own cost can be told from it. Starlette under uvicorn, one pooled
``httpx.AsyncClient``, the body and the headers that matter forwarded as they are; no authentication, no parsing.

Runs in a process of its own (:class:`infra.child_process.ChildServer`), as the gateway's parts do:

    python -m infra.child_process infra.bench_support.passthrough --fd N --ready-fd M --upstream URL
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.asgi_thread import AsgiThread, listening_socket
from infra.child_process import ChildServer, child_parser, inherited_socket, serve_until_stopped

FORWARDED = ("content-type", "accept", "mcp-protocol-version", "mcp-session-id", "last-event-id")
RETURNED = ("content-type", "mcp-session-id")


def create_app(upstream: str) -> Starlette:
    client: list[httpx.AsyncClient] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=30) as http:
            client.append(http)
            yield

    async def forward(request: Request) -> Response:
        headers = {name: value for name, value in request.headers.items() if name in FORWARDED}
        answer = await client[0].request(request.method, upstream, content=await request.body(), headers=headers)
        kept = {name: value for name, value in answer.headers.items() if name in RETURNED}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    return Starlette(routes=[Route("/mcp", forward, methods=["GET", "POST", "DELETE"])], lifespan=lifespan)


class PassThrough(ChildServer):
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


def start_passthrough(upstream: str) -> PassThrough:
    """A pass-through to ``upstream`` in a process of its own, on a free port."""
    return PassThrough("pass-through", __name__, listening_socket(), ["--upstream", upstream])


def main() -> None:
    parser = child_parser("A plain HTTP pass-through in front of an MCP upstream (benchmark baseline).")
    parser.add_argument("--upstream", required=True)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    server = AsgiThread(create_app(arguments.upstream), inherited_socket(arguments.fd), "pass-through").start()
    serve_until_stopped(arguments.ready_fd, server.stop)


if __name__ == "__main__":
    main()

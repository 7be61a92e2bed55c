"""The demo upstream MCP server (:func:`infra.demo_upstream.create_app`) in its own process, for the benchmarks.

    python upstream.py        # prints "demo upstream MCP server on http://127.0.0.1:PORT/mcp" when it listens

A process of its own so that the load client, the upstream and the gateway do not share an interpreter; the
socket comes from :func:`infra.asgi_thread.listening_socket` (TCP_NODELAY on accepted connections, SO_REUSEADDR).
"""

from __future__ import annotations

import uvicorn

from infra.asgi_thread import HOST, listening_socket
from infra.demo_upstream import create_app


def main() -> None:
    sock = listening_socket()
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="on"))
    print(f"demo upstream MCP server on http://{HOST}:{sock.getsockname()[1]}/mcp", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

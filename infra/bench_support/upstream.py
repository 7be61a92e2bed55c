"""The demo upstream MCP server (:func:`infra.demo_upstream.create_app`) in its own process, for the benchmarks.

    python upstream.py        # prints "demo upstream MCP server on http://127.0.0.1:PORT/mcp" when it listens

Unlike ``python -m infra.demo_upstream``, the listening socket is created with ``proto=IPPROTO_TCP``: asyncio
turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose ``proto`` says TCP, and a socket made with
``socket.socket(AF_INET, SOCK_STREAM)`` has ``proto == 0``, which its accepted connections inherit. Without
TCP_NODELAY, the SSE response's last small write (the terminating chunk) waits for the client's delayed ACK, and
every request after the first on a keep-alive connection takes about 40 ms more.
"""

from __future__ import annotations

import socket

import uvicorn

from infra.demo_upstream import HOST, create_app


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    sock.setblocking(False)
    server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", lifespan="on"))
    print(f"demo upstream MCP server on http://{HOST}:{sock.getsockname()[1]}/mcp", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()

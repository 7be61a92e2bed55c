"""An ASGI app served by uvicorn in a daemon thread on 127.0.0.1: the demo upstream, test fixtures."""

from __future__ import annotations

import os
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

HOST = "127.0.0.1"


def listening_socket(port: int = 0) -> socket.socket:
    """A non-blocking listening socket on 127.0.0.1 (port 0: a free port). Raises ``OSError`` if it is taken
    (:func:`infra.ports.port_taken_message` says by whom).

    ``SO_REUSEADDR`` (as http.server, uvicorn and asyncio set it; never ``SO_REUSEPORT``, which would let two servers
    share the port): a connection a stopped server closed first stays in ``TIME_WAIT`` for a minute, and without it
    that connection keeps the server from starting again on its port although nothing listens there.

    ``proto=IPPROTO_TCP``: asyncio turns Nagle's algorithm off only on sockets whose proto says TCP, and accepted
    connections inherit it; otherwise an SSE response's last small write waits for the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if os.name == "posix":  # on Windows it would let a second server bind a port in use (asyncio skips it too)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class AsgiThread:
    """Serve ``app`` on ``sock`` until :meth:`stop`; ``url`` is its MCP endpoint (``/mcp``)."""

    def __init__(self, app: Any, sock: socket.socket, name: str) -> None:
        self._socket = sock
        self.name = name
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)

    @property
    def url(self) -> str:
        """The MCP endpoint, e.g. ``http://127.0.0.1:9001/mcp``."""
        return f"http://{HOST}:{self.port}/mcp"

    def start(self, ready_timeout: float = 10.0) -> AsgiThread:
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError(f"the {self.name} did not start on {HOST}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> AsgiThread:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

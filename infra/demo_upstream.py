"""The demo upstream MCP server behind the route ``demo/echo``, written with the official ``mcp`` SDK.

Streamable HTTP at ``http://127.0.0.1:9001/mcp``: a tool ``echo`` that returns its ``text`` argument, a resource and
a prompt. It is stateless (no ``Mcp-Session-Id``), so every sample event in ``events/`` works on its own.

    python -m infra.demo_upstream --port 9001
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import threading
import time
from types import FrameType, TracebackType

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

HOST = "127.0.0.1"
DEFAULT_PORT = 9001


def create_server() -> MCPServer:
    server = MCPServer(
        "demo-upstream",
        title="Demo upstream",
        instructions="A demo MCP server: `echo` returns the text it is given.",
        version="1.0.0",
        log_level="WARNING",
    )

    @server.tool(description="Return the given text unchanged.")
    def echo(text: str) -> str:
        return text

    @server.resource("demo://greeting", name="greeting", mime_type="text/plain", description="A fixed greeting.")
    def greeting() -> str:
        return "Hello from the demo upstream."

    @server.prompt(description="Ask the assistant to echo a phrase with the echo tool.")
    def echo_prompt(phrase: str) -> str:
        return f"Call the echo tool with the text {phrase!r} and tell me what it returned."

    return server


def create_app() -> Starlette:
    return create_server().streamable_http_app(stateless_http=True, host=HOST)


class DemoUpstream:
    """A running demo upstream (uvicorn in a daemon thread). Use :func:`start_demo_upstream`."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(create_app(), log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="demo-upstream", daemon=True
        )

    @property
    def url(self) -> str:
        """The MCP endpoint, e.g. ``http://127.0.0.1:9001/mcp``."""
        return f"http://{HOST}:{self.port}/mcp"

    def start(self, ready_timeout: float = 10.0) -> DemoUpstream:
        self._thread.start()
        deadline = time.monotonic() + ready_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise RuntimeError(f"the demo upstream did not start on {HOST}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> DemoUpstream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_demo_upstream(port: int = 0) -> DemoUpstream:
    """Start the demo upstream on 127.0.0.1 (port 0: a free port). Raises ``OSError`` if the port is taken."""
    # proto=IPPROTO_TCP: asyncio turns Nagle's algorithm off only on sockets whose proto says TCP, and accepted
    # connections inherit it; otherwise an SSE response's last small write waits for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return DemoUpstream(sock).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        upstream = start_demo_upstream(args.port)
    except OSError as error:
        raise SystemExit(f"cannot listen on {HOST}:{args.port}: {error.strerror}") from None
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"demo upstream MCP server on {upstream.url} (Ctrl-C to stop)", flush=True)
    stopping.wait()
    upstream.stop()


if __name__ == "__main__":
    main()

"""The demo upstream MCP server behind the route ``demo/echo``, written with the official ``mcp`` SDK.

Streamable HTTP at ``http://127.0.0.1:9001/mcp``: a tool ``echo`` that returns its ``text`` argument, a resource and
a prompt. It is stateless (no ``Mcp-Session-Id``), so every sample event in ``events/`` works on its own.

    python -m infra.demo_upstream --port 9001
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import threading
from types import FrameType

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

from infra.asgi_thread import HOST, AsgiThread, listening_socket
from infra.ports import port_taken_message

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


DemoUpstream = AsgiThread  # a running demo upstream; see :func:`start_demo_upstream`


def start_demo_upstream(port: int = 0) -> DemoUpstream:
    """Start the demo upstream on 127.0.0.1 (port 0: a free port). Raises ``OSError`` if the port is taken."""
    return AsgiThread(create_app(), listening_socket(port), "demo upstream").start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        upstream = start_demo_upstream(args.port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SystemExit(
                port_taken_message(args.port, "demo upstream", "Stop it, or choose another port: --port <port>")
            ) from None
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

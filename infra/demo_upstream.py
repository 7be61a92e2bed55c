"""The demo upstream MCP server behind the route ``demo/echo``, written with the official ``mcp`` SDK.

Streamable HTTP at ``http://127.0.0.1:9001/mcp``: a tool ``echo`` that returns its ``text`` argument, a resource and
a prompt. It is stateless (no ``Mcp-Session-Id``), so every sample event in ``events/`` works on its own.

    python -m infra.demo_upstream --port 9001
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

from infra.asgi_thread import HOST, AsgiThread, listening_socket
from infra.child_process import ChildServer, StopRequests, child_parser, inherited_socket, serve_until_stopped
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


class DemoUpstream(ChildServer):
    """The demo upstream running in a process of its own (see :func:`start_demo_upstream`)."""

    @property
    def url(self) -> str:
        """The MCP endpoint, e.g. ``http://127.0.0.1:9001/mcp``."""
        return f"http://{HOST}:{self.port}/mcp"


def start_demo_upstream(port: int = 0, *, wait: bool = True) -> DemoUpstream:
    """Start the demo upstream in a process of its own on 127.0.0.1 (port 0: a free port), as an upstream MCP server
    runs elsewhere than the gateway. Raises ``OSError`` if the port is taken (bound here, so the message can name
    who holds it). ``wait=False``: return at once (its port is known); call ``wait_ready()`` before using it."""
    return DemoUpstream("demo upstream", "infra.demo_upstream", listening_socket(port), ["--child"], wait=wait)


def serve_in_this_process(port: int = 0) -> AsgiThread:
    """The demo upstream in a thread of this process (``python -m infra.demo_upstream`` on its own)."""
    return AsgiThread(create_app(), listening_socket(port), "demo upstream").start()


def _child_main(argv: list[str]) -> None:
    """Entry point of the process :func:`start_demo_upstream` starts (:mod:`infra.child_process`)."""
    parser = child_parser("The demo upstream MCP server in a process of its own.")
    parser.add_argument("--child", action="store_true")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    upstream = AsgiThread(create_app(), inherited_socket(arguments.fd), "demo upstream").start()
    serve_until_stopped(arguments.ready_fd, upstream.stop)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--child" in argv:
        _child_main(argv)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        upstream = serve_in_this_process(args.port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SystemExit(
                port_taken_message(args.port, "demo upstream", "Stop it, or choose another port: --port <port>")
            ) from None
        raise SystemExit(f"cannot listen on {HOST}:{args.port}: {error.strerror}") from None
    print(f"demo upstream MCP server on {upstream.url} (Ctrl-C to stop)", flush=True)
    with StopRequests() as stop:
        stop.wait()
    upstream.stop()


if __name__ == "__main__":
    main()

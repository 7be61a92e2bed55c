"""A small HTTP/1.1 WSGI server that keeps its connections open, for moto's WSGI app (the local AWS stand-in).

werkzeug's development server, moto's own, answers every request with ``Connection: close`` (and then lingers up to
10 ms draining the socket), so botocore's connection pool opens a new TCP connection for every AWS call; a DynamoDB
client on Lambda keeps its connections to the regional endpoint instead. This server reads each request's body whole
before calling the app, so nothing of one request can be taken for the next, answers with a ``Content-Length``, and
keeps the connection for the next request unless the client asks to close it (RFC 9112 §9.3).
"""

from __future__ import annotations

import io
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

log = logging.getLogger("infra.keepalive_wsgi")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_BODY_BYTES = 16 * 1024 * 1024
# Not the app's to decide: this server frames the body and manages the connection itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class BadRequestBody(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_body(rfile: io.BufferedIOBase, headers: Message, limit: int = MAX_BODY_BYTES) -> bytes:
    """A request's whole body: ``Transfer-Encoding: chunked`` (RFC 9112 §7.1) or ``Content-Length`` bytes, else
    none. Raises :class:`BadRequestBody` (400, or 413 past ``limit``)."""
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        chunks: list[bytes] = []
        total = 0
        while True:
            try:
                size = int(rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise BadRequestBody(400, "Bad Request") from None
            if size == 0:
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(chunks)
            total += size
            if total > limit:
                raise BadRequestBody(413, "Request Entity Too Large")
            chunks.append(rfile.read(size))
            rfile.readline()
    length_header = headers.get("content-length")
    if not length_header:
        return b""
    try:
        length = int(length_header)
    except ValueError:
        raise BadRequestBody(400, "Bad Request") from None
    if length < 0:
        raise BadRequestBody(400, "Bad Request")
    if length > limit:
        raise BadRequestBody(413, "Request Entity Too Large")
    return rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small answers on a kept connection must not wait for a delayed ACK
    server: KeepAliveWsgiServer

    def _handle(self) -> None:
        try:
            body = read_body(self.rfile, self.headers)
        except BadRequestBody as problem:
            self.close_connection = True
            self.send_error(problem.status, problem.message)
            return
        captured: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured[:] = [status, headers]
            return written.append

        try:
            result = self.server.app(self._environ(body), start_response)
            try:
                written.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            log.exception("the WSGI app failed on %s %s", self.command, self.path.partition("?")[0])
            self.close_connection = True
            self.send_error(500)
            return
        status, headers = captured
        code, _, reason = str(status).partition(" ")
        payload = b"".join(written)
        self.send_response_only(int(code), reason or None)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD":
            length = next((value for name, value in headers if name.lower() == "content-length"), None)
            if length is not None:
                self.send_header("content-length", length)
            payload = b""
        else:
            self.send_header("content-length", str(len(payload)))
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(payload)  # status line, headers and body in one write
        self.flush_headers()

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": self.path,
            "RAW_URI": self.path,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in self.headers.items():
            if "_" in name:
                continue  # as werkzeug: X_Foo and X-Foo would both become HTTP_X_FOO
            key = name.upper().replace("-", "_")
            if key == "CONTENT_LENGTH" or key == "TRANSFER_ENCODING":
                continue  # the body is whole now
            if key != "CONTENT_TYPE":
                key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        """No access log (the dev server logs each request it serves)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)


class KeepAliveWsgiServer(ThreadingHTTPServer):
    """Serve ``app`` on an already listening socket, a thread per connection, until :meth:`shutdown`."""

    daemon_threads = True

    def __init__(self, sock: socket.socket, app: WsgiApp) -> None:
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        sock.setblocking(True)
        self.socket = sock
        self.server_address = sock.getsockname()[:2]
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away
        log.exception("error while serving %s", client_address[0])

"""A tiny forwarding HTTP proxy on 127.0.0.1 that adds ``Authorization: Bearer <token>`` to every request.

The MCP conformance suite's ``server`` command cannot send an Authorization header, and the gateway rightly answers
401 without one. The test harness therefore points the suite at this proxy, which forwards each request to the
gateway (same method, path, query, headers and body) with the bearer token of a real OAuth flow added, and relays
the response as it arrives. The gateway itself has no bypass: what it serves here, it serves to any client holding
that token.

Hop-by-hop headers (RFC 9110 §7.6.1) and ``Host`` are not forwarded (the target's own host is used, as any
forwarding proxy does); ``Origin`` is, so the gateway's Origin check still applies. Response bodies are relayed raw
(no decompression) and with chunked encoding when their length is unknown, so SSE streams pass event by event.
"""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

HOST = "127.0.0.1"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "authorization"}
READ_TIMEOUT = 60.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: ForwardingProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (the suite cancels streams it has read enough of) is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        # RFC 9110 §5.5: whitespace around a field value is not part of it (and httpx refuses to send it).
        headers = [(name, value.strip()) for name, value in self.headers.items() if name.lower() not in NOT_FORWARDED]
        headers.append(("Authorization", f"Bearer {proxy.token}"))
        request = proxy.client.build_request(self.command, proxy.target + self.path, headers=headers, content=body)
        try:
            response = proxy.client.send(request, stream=True)
        except httpx.HTTPError as error:
            message = f"forwarding proxy: {type(error).__name__}: {error}".encode()
            self.send_response(502)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(message)))
            self.end_headers()
            self.wfile.write(message)
            return
        proxy.requests += 1
        try:
            self.send_response(response.status_code)
            chunked = "content-length" not in response.headers
            for name, value in response.headers.multi_items():
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in response.iter_raw():
                if not chunk:
                    continue
                if chunked:
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                else:
                    self.wfile.write(chunk)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        except ConnectionError:
            self.close_connection = True  # the client went away mid-stream (the suite cancels SSE reads)
        finally:
            response.close()

    def __getattr__(self, name: str) -> Any:
        """``do_GET``, ``do_POST``...: http.server looks up one method per verb; every verb is forwarded."""
        if name.startswith("do_"):
            return self._forward
        raise AttributeError(name)


class ForwardingProxy:
    """``http://127.0.0.1:<port>/<path>`` forwards to ``<target>/<path>`` with the bearer token added.

    ``token`` may be replaced at any time (a refreshed token). ``requests`` counts forwarded requests."""

    def __init__(self, target: str, token: str, *, port: int = 0) -> None:
        parts = urlsplit(target)
        self.target = f"{parts.scheme}://{parts.netloc}"
        self.token = token
        self.requests = 0
        self.client = httpx.Client(timeout=httpx.Timeout(10.0, read=READ_TIMEOUT), follow_redirects=False)
        self._httpd = _Server((HOST, port), _Handler)
        self._httpd.proxy = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="forwarding-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def origin(self) -> str:
        """The Origin a browser-like client of the proxy sends (the suite's DNS-rebinding scenario sends it)."""
        return self.url

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self.client.close()

    def __enter__(self) -> ForwardingProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

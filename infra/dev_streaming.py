"""The dev server's stand-in for the streaming deployment (template ``ProxyResponseMode=streaming``): a function the
template runs under the Lambda Web Adapter is served as the adapter serves it — its ASGI app (``Metadata.AsgiApp``)
under uvicorn — and each request is forwarded to it with the answer streamed back as it is written, chunk by chunk,
as API Gateway's response streaming does. The adapter's ``x-amzn-request-context`` header carries the request
context (request id, stage, source address).

One server stands for the function's containers: on Lambda each concurrent request gets a container of its own;
here they share one event loop, which changes nothing the gateway relies on (containers share no state). It runs in
a process of its own (``python -m infra.child_process infra.dev_streaming``, with the function's environment), or,
for a function whose containers are threads, in a thread of this process.
"""

from __future__ import annotations

import http.client
import importlib
import json
import logging
import secrets
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from infra.asgi_thread import AsgiThread, listening_socket
from infra.child_process import ChildServer, child_parser, inherited_socket, serve_until_stopped
from infra.lambda_container import QUIET_LOGGERS
from infra.lambda_event import HttpRequest
from infra.template import FunctionSpec

log = logging.getLogger("infra.devserver")

READ_BYTES = 65536
# Not forwarded in either direction (RFC 9110 §7.6.1), and the adapter's own header, which a client must not set.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host"}
)
ADAPTER_CONTEXT_HEADER = "x-amzn-request-context"


class LoadsApps(Protocol):
    spec: FunctionSpec
    environment: dict[str, str]
    log_level: int

    @property
    def isolation(self) -> str: ...

    @property
    def code_dir(self) -> Path: ...

    def load(self, dotted: str) -> Any: ...


class _Server(Protocol):
    port: int

    def stop(self) -> None: ...


class ResponseWriter(Protocol):
    """What the dev server's request handler offers to write a streamed answer."""

    def send_response_only(self, code: int, message: str | None = None) -> None: ...

    def send_header(self, keyword: str, value: str) -> None: ...

    def end_headers(self) -> None: ...


class StreamingFunction:
    """A function served as the Lambda Web Adapter serves it; started on its first request (a cold start)."""

    def __init__(self, function: LoadsApps) -> None:
        self.function = function
        self._server: _Server | None = None
        self._lock = threading.Lock()

    @property
    def spec(self) -> FunctionSpec:
        return self.function.spec

    def _started(self) -> _Server:
        with self._lock:
            if self._server is None:
                app_name = self.spec.asgi_app
                if app_name is None:
                    raise RuntimeError(f"{self.spec.logical_id} names no ASGI app")
                name = f"{self.spec.logical_id}-web-adapter"
                if self.function.isolation == "process":
                    args = ["--code-dir", str(self.function.code_dir), "--app", app_name]
                    args += ["--log-level", logging.getLevelName(self.function.log_level)]
                    env = self.function.environment or None
                    self._server = ChildServer(name, __name__, listening_socket(), args, env=env)
                else:
                    self._server = AsgiThread(self.function.load(app_name), listening_socket(), name).start()
            return self._server

    def forward(
        self,
        request: HttpRequest,
        writer: ResponseWriter,
        write: Callable[[bytes], None],
        *,
        stage: str = "$default",
    ) -> int:
        """Forward ``request`` to the function's server and stream its answer to ``writer``/``write`` (a chunked
        body unless the app sent a length). Returns the status. Raises ``OSError`` when the client goes away."""
        server = self._started()
        target = request.raw_path + (f"?{request.raw_query}" if request.raw_query else "")
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=float(self.spec.timeout))
        try:
            connection.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers:
                if name.lower() not in HOP_BY_HOP and name.lower() != ADAPTER_CONTEXT_HEADER:
                    connection.putheader(name, value)
            connection.putheader("host", _header(request, "host") or "localhost")
            connection.putheader(ADAPTER_CONTEXT_HEADER, json.dumps(_request_context(request, stage)))
            if request.body or request.method in ("POST", "PUT", "PATCH"):
                connection.putheader("content-length", str(len(request.body)))
            connection.endheaders(request.body or None)
            response = connection.getresponse()
            writer.send_response_only(response.status)
            length = response.getheader("content-length")
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    writer.send_header(name, value)
            if length is not None:
                writer.send_header("content-length", length)
            else:
                writer.send_header("transfer-encoding", "chunked")
            writer.end_headers()
            while piece := response.read1(READ_BYTES):
                write(piece if length is not None else b"%x\r\n%s\r\n" % (len(piece), piece))
            if length is None:
                write(b"0\r\n\r\n")
            return response.status
        finally:
            connection.close()

    @property
    def process_id(self) -> int | None:
        """The process serving the app, once started in a process of its own."""
        server = self._server
        return server.process.pid if isinstance(server, ChildServer) and server.running else None

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None


def _header(request: HttpRequest, name: str) -> str | None:
    return next((value for key, value in request.headers if key.lower() == name), None)


def _request_context(request: HttpRequest, stage: str) -> dict[str, Any]:
    """The REST API request context the adapter passes on (the parts the gateway reads)."""
    return {
        "requestId": secrets.token_hex(16),
        "stage": stage,
        "httpMethod": request.method,
        "path": request.raw_path,
        "identity": {"sourceIp": request.source_ip},
    }


def main(argv: list[str] | None = None) -> None:
    """The function's ASGI app under uvicorn, in a process of its own (see the module docstring)."""
    parser = child_parser("A streaming function's ASGI app under uvicorn, as the Lambda Web Adapter serves it.")
    parser.add_argument("--code-dir", required=True)
    parser.add_argument("--app", required=True, help="module.attribute")
    parser.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.path.insert(0, arguments.code_dir)
    module_name, _, attribute = arguments.app.rpartition(".")
    app = getattr(importlib.import_module(module_name), attribute)
    server = AsgiThread(app, inherited_socket(arguments.fd), f"{module_name} web adapter").start()
    serve_until_stopped(arguments.ready_fd, server.stop)


if __name__ == "__main__":
    main()

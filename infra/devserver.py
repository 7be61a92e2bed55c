"""The local dev server: serves the HTTP API declared in template.yaml by calling each function's Lambda handler.

A request is matched against the template's routes as API Gateway matches them, turned into the payload-2.0 event
(:mod:`infra.lambda_event`), and handed to a simulated container of the function (:mod:`infra.lambda_function`):
by default a process of its own per container, as Lambda runs them, which imports the handler on its first
invocation, so a broken function answers 502 and the server keeps running. The streaming deployment's functions are
served as the Lambda Web Adapter serves them (:mod:`infra.dev_streaming`). What no route of the template serves may
be answered by local pages (``local_pages``: ``make dev``'s start page), never part of the deployed API.

Every function gets the union of the functions' environments (:func:`function_environment`, which refuses
conflicting values), as they got when they shared one process, so ``make invoke`` and the tests' in-process
runtimes see the same values.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.child_process import REPO_ROOT
from infra.dev_streaming import StreamingFunction
from infra.keepalive_wsgi import BadRequestBody, read_body
from infra.lambda_container import ContainerProcess, FunctionFailed, FunctionTimedOut, HandlerError
from infra.lambda_event import (
    PAYLOAD_LIMIT_BYTES,
    HttpApiRoutes,
    HttpRequest,
    HttpResponse,
    InvalidLambdaResponse,
    RouteMatch,
    build_event,
    gateway_error,
    internal_error,
    not_found,
    payload_size,
    response_from_lambda,
    service_unavailable,
)
from infra.lambda_function import DEFAULT_MAX_CONTAINERS, Forker, Isolation, LambdaFunction
from infra.lambda_zygote import AVAILABLE as ZYGOTES_AVAILABLE
from infra.lambda_zygote import Zygote
from infra.template import FunctionSpec, functions, resolve_environment

__all__ = [
    "REPO_ROOT",
    "DevServer",
    "FunctionFailed",
    "FunctionTimedOut",
    "LambdaFunction",
    "function_environment",
    "patched_environ",
    "start_dev_server",
]

log = logging.getLogger("infra.devserver")

INTEGRATION_TIMEOUT_SECONDS = 30.0
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024  # the HTTP API's request payload limit
MAX_REMEMBERED_MATCHES = 4096

LocalPages = Callable[[HttpRequest], HttpResponse | None]


# --- environment --------------------------------------------------------------------------------------------


def function_environment(
    template: Mapping[str, Any], *, refs: Mapping[str, str], parameters: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The union of every function's environment. Raises ``ValueError`` if two functions need different values
    for one variable, since locally they share one environment (``make invoke``'s, the tests' runtimes)."""
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    conflicts: list[str] = []
    for spec in functions(dict(template)):
        env = resolve_environment(dict(template), spec, refs=dict(refs), parameters=dict(parameters or {}))
        for key, value in env.items():
            if key in merged and merged[key] != value:
                conflicts.append(f"{key} ({owner[key]}={merged[key]!r}, {spec.logical_id}={value!r})")
            else:
                merged.setdefault(key, value)
                owner.setdefault(key, spec.logical_id)
    if conflicts:
        raise ValueError(
            "functions need different values of the same environment variable, which one local environment "
            "cannot give them: " + "; ".join(conflicts)
        )
    return merged


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore the previous values."""
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- HTTP server --------------------------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive", "date"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    dev: DevServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away mid-response is routine; anything else is logged with its traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s disconnected", client_address[0])
        else:
            log.exception("error while serving %s", client_address[0])


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: with Nagle's algorithm on, a small response on a keep-alive connection waits for the client's
    # delayed ACK (~40 ms per request), a stall API Gateway does not have.
    disable_nagle_algorithm = True
    server: _Server

    def _handle(self) -> None:
        started = time.perf_counter()
        dev = self.server.dev
        raw_path, _, raw_query = self.path.partition("?")
        function_name = "-"
        try:
            body = read_body(self.rfile, self.headers, MAX_REQUEST_BODY_BYTES)
        except BadRequestBody as problem:
            self._send(gateway_error(problem.status, problem.message), started, raw_path, function_name)
            self.close_connection = True
            return
        request = HttpRequest(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        match = dev.match(request.method, request.raw_path)
        streaming = None if match is None else dev.streaming.get(match.target.spec.logical_id)
        if streaming is not None:
            self._stream(streaming, request, started, raw_path)
            return
        if match is None:
            response = (dev.local_pages(request) if dev.local_pages is not None else None) or not_found()
            function_name = "-" if response.status == 404 else "local page"
        else:
            function_name = match.target.spec.logical_id
            event = build_event(request, match, server_port=dev.port)
            response = dev.call(match.target, event)
        self._send(response, started, raw_path, function_name)

    def _stream(self, function: StreamingFunction, request: HttpRequest, started: float, path: str) -> None:
        """A streaming function's answer, relayed as it is written (the REST API's response streaming)."""
        name = function.spec.logical_id
        try:
            status = function.forward(request, self, self._write_and_flush)
        except (ConnectionError, TimeoutError) as problem:
            log.warning("%s %s: stream ended early: %s", self.command, path, type(problem).__name__)
            self.close_connection = True
            return
        except Exception:
            log.exception("%s failed", name)
            self._send(internal_error(), started, path, name)
            return
        log.info(
            "%s %s %d %.0fms %s (streamed)", self.command, path, status, (time.perf_counter() - started) * 1000, name
        )

    def _write_and_flush(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def _send(self, response: HttpResponse, started: float, path: str, function_name: str) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        # Logged before the answer leaves, so the line exists by the time the client has it. The path only: query
        # strings may carry authorization codes, and headers carry tokens.
        log.info("%s %s %d %.0fms %s", self.command, path, response.status, elapsed, function_name)
        self.send_response_only(response.status)
        self.send_header("date", formatdate(usegmt=True))
        self.send_header("content-length", str(len(response.body)))
        self.send_header("apigw-requestid", secrets.token_urlsafe(12))
        for name, value in response.headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        # Status line, headers and body in one write (one segment for small responses, no header/body split).
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and response.body:
            self._headers_buffer.append(response.body)
        self.flush_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own access log; :meth:`_send` logs one line without query strings."""

    def __getattr__(self, name: str) -> Any:
        """``do_GET``, ``do_POST``...: http.server looks up one method per HTTP verb; all go to the router."""
        if name.startswith("do_") and name[3:] in _METHODS:
            return self._handle
        raise AttributeError(name)


class DevServer:
    """The template's HTTP API served on 127.0.0.1. Use :func:`start_dev_server`."""

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        root: Path = REPO_ROOT,
        integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS,
        max_containers: int = DEFAULT_MAX_CONTAINERS,
        parameters: Mapping[str, str] | None = None,
        isolation: Isolation = "process",
        local_pages: LocalPages | None = None,
        fork_server: bool = True,
    ) -> None:
        """``parameters``: the template parameters the functions are deployed with (``ProxyResponseMode``...);
        ``isolation``: a process per container (as Lambda), or a thread of this process; ``fork_server``: container
        processes are forked from a process that imported the shared core once (:mod:`infra.lambda_zygote`, Linux),
        not each a new interpreter; ``local_pages``: answers requests no route of the template serves (None for API
        Gateway's 404)."""
        self._fork_server = fork_server and isolation == "process" and ZYGOTES_AVAILABLE
        self._zygotes: dict[Path, Zygote] = {}
        self.integration_timeout = integration_timeout
        self.local_pages = local_pages
        self.functions: dict[str, LambdaFunction] = {}
        self.streaming: dict[str, StreamingFunction] = {}
        """The functions the template runs under the Lambda Web Adapter (response streaming), by logical id."""
        self.routes: HttpApiRoutes[LambdaFunction] = HttpApiRoutes()
        for spec in functions(dict(template), parameters):
            function = LambdaFunction(spec, root=root, max_containers=max_containers, isolation=isolation)
            self.functions[spec.logical_id] = function
            if spec.streams:
                self.streaming[spec.logical_id] = StreamingFunction(function)
            for route in spec.routes:
                self.routes.add(route.method, route.path, function)
        self._httpd = _Server((host, port), _RequestHandler)
        self._httpd.dev = self
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._environ: Any = None
        self._matches: dict[tuple[str, str], RouteMatch[LambdaFunction] | None] = {}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def fork_servers(self) -> list[Zygote]:
        """The fork servers its container processes come from (none for thread containers, or off Linux)."""
        return list(self._zygotes.values())

    def process_ids(self) -> list[int]:
        """This process and every container process it runs now (what a benchmark sums the CPU time of)."""
        pids = [os.getpid()]
        for function in self.functions.values():
            pids += function.process_ids
        pids += [pid for streaming in self.streaming.values() if (pid := streaming.process_id) is not None]
        return pids

    def match(self, method: str, raw_path: str) -> RouteMatch[LambdaFunction] | None:
        """The template route serving ``method raw_path``, remembered per pair (the table is fixed once built)."""
        key = (method, raw_path)
        if key in self._matches:
            return self._matches[key]
        found = self.routes.match(method, raw_path)
        if len(self._matches) >= MAX_REMEMBERED_MATCHES:
            self._matches.clear()
        self._matches[key] = found
        return found

    def start(self, env: Mapping[str, str], *, default_base_url: bool = True) -> DevServer:
        """Apply ``env`` (plus ``GATEWAY_PUBLIC_BASE_URL`` = this server's URL unless given or
        ``default_base_url`` is false) to ``os.environ`` until :meth:`stop`, and start serving."""
        env = dict(env)
        if default_base_url:
            env.setdefault("GATEWAY_PUBLIC_BASE_URL", self.url)
        self._environ = patched_environ(env)
        self._environ.__enter__()
        level = logging.getLogger().getEffectiveLevel()
        for function in self.functions.values():
            function.environment = dict(os.environ)  # a container process's, as the template gives it
            function.log_level = level
            if self._fork_server:
                zygote = self._zygotes.get(function.code_dir)
                if zygote is None:  # started now: its imports run while the server starts
                    zygote = self._zygotes[function.code_dir] = Zygote(function.code_dir, function.environment, level)
                function.forker = _forker(zygote)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="devserver", daemon=True
        )
        self._thread.start()
        log.info("dev server on %s serving %d routes of %d functions", self.url, len(self.routes), len(self.functions))
        return self

    def call(self, function: LambdaFunction, event: dict[str, Any]) -> HttpResponse:
        """Invoke ``function`` as the HTTP API's Lambda integration does and build the HTTP response."""
        name = function.spec.logical_id
        if payload_size(event) > PAYLOAD_LIMIT_BYTES:
            return gateway_error(413, "Request Entity Too Large")
        try:
            result = function.invoke(event, integration_timeout=self.integration_timeout)
        except FunctionTimedOut as timeout:
            log.warning("%s", timeout)
            if function.spec.timeout < self.integration_timeout:
                return internal_error()  # Lambda's "Task timed out" is a function error
            return service_unavailable()
        except HandlerError:
            return internal_error()  # the container logged it, with its traceback
        except ImportError as error:
            log.error("%s: cannot import handler %s: %s", name, function.spec.handler, error)
            return internal_error()
        except Exception:
            log.exception("%s raised", name)
            return internal_error()
        if payload_size(result) > PAYLOAD_LIMIT_BYTES:
            log.error("%s returned more than Lambda's 6 MB response limit", name)
            return internal_error()
        try:
            return response_from_lambda(result)
        except InvalidLambdaResponse as problem:
            log.error("%s returned an invalid response: %s", name, problem)
            return internal_error()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every function is idle, the work its requests left for after the answer included (the audit
        event of a tool call is written after its answer, as on Lambda): a test reads what a call recorded only
        after this. False on timeout."""
        return all(function.wait_idle(timeout) for function in self.functions.values())

    def stop(self) -> None:
        """Stop serving, then the containers. Idempotent."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        for function in self.functions.values():
            function.close()
        for streaming in self.streaming.values():
            streaming.stop()
        for zygote in self._zygotes.values():
            zygote.stop()
        self._zygotes.clear()
        if self._environ is not None:
            self._environ.__exit__(None, None, None)
            self._environ = None

    def __enter__(self) -> DevServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _forker(zygote: Zygote) -> Forker:
    def fork(spec: FunctionSpec, code_dir: Path, log_stream_name: str, log_level: int) -> ContainerProcess:
        return zygote.fork(spec, log_stream_name, log_level)

    return fork


def start_dev_server(
    template: Mapping[str, Any],
    env: Mapping[str, str],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    default_base_url: bool = True,
    **options: Any,
) -> DevServer:
    """Serve ``template``'s routes on ``host:port`` (0: a free port) with ``env`` applied to ``os.environ`` until
    :meth:`DevServer.stop`. ``GATEWAY_PUBLIC_BASE_URL`` defaults to the server's own URL. ``options``:
    ``root`` (where CodeUri is relative to), ``integration_timeout``, ``max_containers``, ``parameters`` (the
    template parameters that choose the functions' form, e.g. ``{"ProxyResponseMode": "streaming"}``)."""
    return DevServer(template, host=host, port=port, **options).start(env, default_base_url=default_base_url)

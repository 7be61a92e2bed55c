"""The local dev server: serves the HTTP API declared in template.yaml by calling each function's Lambda handler.

A request is matched against the template's routes as API Gateway matches them, turned into the payload-2.0 event
(:mod:`infra.lambda_event`), and handed to a simulated container of the function: a daemon thread with its own
asyncio event loop (Mangum drives the app with ``run_until_complete``) that runs one invocation at a time. A
function gets a new container when all of its containers are busy, up to a limit, as Lambda scales. Handlers are
imported on first use, in the container, so a broken function answers 502 and the server keeps running. Each
container loads the handler module afresh (a cold start: the entry point builds its own runtime from the
environment), so containers share nothing but what they would share on AWS: the tables, keys and secrets.

All functions run in this one process and therefore share ``os.environ``: :func:`function_environment` merges their
environments and refuses conflicting values instead of letting one function see another's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import itertools
import logging
import os
import queue
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from infra.dev_streaming import StreamingFunction
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
    request_id_of,
    response_from_lambda,
    service_unavailable,
)
from infra.template import FunctionSpec, functions, resolve_environment

log = logging.getLogger("infra.devserver")

REPO_ROOT = Path(__file__).resolve().parent.parent
INTEGRATION_TIMEOUT_SECONDS = 30.0
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024  # the HTTP API's request payload limit
DEFAULT_MAX_CONTAINERS = 8
MAX_REMEMBERED_MATCHES = 4096

Handler = Callable[[dict[str, Any], Any], Any]


class FunctionFailed(Exception):
    """The function could not be imported, raised, or returned a result API Gateway rejects."""


class FunctionTimedOut(Exception):
    """The invocation outlived the function's timeout or the integration timeout."""


# --- Lambda context -----------------------------------------------------------------------------------------


class LambdaContext:
    """The context object Lambda passes to a Python handler (the attributes handlers and Powertools read)."""

    def __init__(self, spec: FunctionSpec, *, request_id: str, log_stream_name: str, timeout: float) -> None:
        self.function_name = spec.logical_id
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{spec.logical_id}"
        self.memory_limit_in_mb = spec.memory_size
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.logical_id}"
        self.log_stream_name = log_stream_name
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --- simulated containers -----------------------------------------------------------------------------------


@dataclass
class _Job:
    event: dict[str, Any]
    timeout: float
    future: concurrent.futures.Future[Any]


class LambdaFunction:
    """One function of the template and its pool of simulated containers."""

    def __init__(
        self, spec: FunctionSpec, *, root: Path = REPO_ROOT, max_containers: int = DEFAULT_MAX_CONTAINERS
    ) -> None:
        self.spec = spec
        self.root = root
        self.max_containers = max_containers
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._modules: list[ModuleType] = []
        self._containers: list[threading.Thread] = []
        self._idle = 0
        self._pending = 0
        self._closed = False

    @property
    def containers(self) -> int:
        """How many containers have been started (a measure of concurrency)."""
        with self._lock:
            return len(self._containers)

    @property
    def modules(self) -> list[ModuleType]:
        """The handler module each container loaded, oldest first (tests inspect a container's runtime)."""
        with self._lock:
            return list(self._modules)

    def invoke(self, event: dict[str, Any], *, integration_timeout: float | None = None) -> Any:
        """Run the handler on ``event`` in a free container and return its result.

        Raises :class:`FunctionTimedOut` after the function's timeout (or ``integration_timeout`` if shorter) and
        :class:`FunctionFailed` when the handler cannot be imported or raises.
        """
        timeout = float(self.spec.timeout)
        if integration_timeout is not None:
            timeout = min(timeout, integration_timeout)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit(_Job(event, float(self.spec.timeout), future))
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            # A thread cannot be killed: the container stays busy until the handler returns, and new requests
            # go to other containers meanwhile.
            raise FunctionTimedOut(f"{self.spec.logical_id} did not answer within {timeout:g} s") from None

    def close(self) -> None:
        """Stop idle containers; busy ones stop when their invocation returns (they are daemon threads)."""
        with self._lock:
            self._closed = True
            count = len(self._containers)
        for _ in range(count):
            self._jobs.put(None)

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise FunctionFailed(f"{self.spec.logical_id} is shut down")
            self._pending += 1
            if self._pending > self._idle and len(self._containers) < self.max_containers:
                self._start_container()
        self._jobs.put(job)

    def _start_container(self) -> None:
        """Called with the lock held. A new container counts as idle: it is about to take a job."""
        number = len(self._containers) + 1
        stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{secrets.token_hex(16)}"
        thread = threading.Thread(
            target=self._container_main,
            args=(stream,),
            name=f"{self.spec.logical_id}-container-{number}",
            daemon=True,
        )
        self._containers.append(thread)
        self._idle += 1
        thread.start()

    def _container_main(self, log_stream_name: str) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        handler: list[Handler] = []  # loaded by the first invocation of this container
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                with self._lock:
                    self._idle -= 1
                    self._pending -= 1
                try:
                    if job.future.set_running_or_notify_cancel():
                        self._run(job, log_stream_name, handler)
                finally:
                    with self._lock:
                        self._idle += 1
        finally:
            loop.close()

    def _run(self, job: _Job, log_stream_name: str, handler: list[Handler]) -> None:
        try:
            if not handler:
                handler.append(self._load_handler())
            context = LambdaContext(
                self.spec,
                request_id=request_id_of(job.event) or secrets.token_hex(16),
                log_stream_name=log_stream_name,
                timeout=job.timeout,
            )
            job.future.set_result(handler[0](job.event, context))
        except BaseException as error:  # a Lambda runtime reports any failure
            job.future.set_exception(error)

    def _load_handler(self) -> Handler:
        """A fresh instance of the handler's module (``proxy.app`` of ``proxy.app.handler``), as a new container's
        init phase runs it; the shared core it imports is loaded once per process, like a layer."""
        handler = self.load(self.spec.handler)
        if not callable(handler):
            raise FunctionFailed(f"{self.spec.handler} is not callable")
        loaded: Handler = handler
        return loaded

    def load(self, dotted: str) -> Any:
        """``module.attribute`` from a fresh instance of the module in the function's code directory."""
        module_name, _, attribute = dotted.rpartition(".")
        code_dir = (self.root / self.spec.code_uri).resolve()
        if str(code_dir) not in sys.path:
            sys.path.insert(0, str(code_dir))
        path = code_dir.joinpath(*module_name.split(".")).with_suffix(".py")
        spec = importlib.util.spec_from_file_location(f"{module_name}.container{next(_container_numbers)}", path)
        if spec is None or spec.loader is None:
            raise FunctionFailed(f"{self.spec.logical_id}: no module {module_name} in {code_dir}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        value = getattr(module, attribute, None)
        if value is None:
            raise FunctionFailed(f"{module_name} has no {attribute!r}")
        with self._lock:
            self._modules.append(module)
        return value


_container_numbers = itertools.count(1)


# --- environment --------------------------------------------------------------------------------------------


def function_environment(
    template: Mapping[str, Any], *, refs: Mapping[str, str], parameters: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The union of every function's environment. Raises ``ValueError`` if two functions need different values
    for one variable, since locally they share one process."""
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
            "functions need different values of the same environment variable, which one local process "
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
            body = self._read_body()
        except _BadRequest as problem:
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
            response = not_found()
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

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BODY_BYTES:
                    raise _BadRequest(413, "Request Entity Too Large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length_header = self.headers.get("content-length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BadRequest(400, "Bad Request") from None
        if length > MAX_REQUEST_BODY_BYTES:
            raise _BadRequest(413, "Request Entity Too Large")
        return self.rfile.read(length) if length > 0 else b""

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


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    ) -> None:
        """``parameters``: the template parameters the functions are deployed with (``ProxyResponseMode``...)."""
        self.integration_timeout = integration_timeout
        self.functions: dict[str, LambdaFunction] = {}
        self.streaming: dict[str, StreamingFunction] = {}
        """The functions the template runs under the Lambda Web Adapter (response streaming), by logical id."""
        self.routes: HttpApiRoutes[LambdaFunction] = HttpApiRoutes()
        for spec in functions(dict(template), parameters):
            function = LambdaFunction(spec, root=root, max_containers=max_containers)
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

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        for function in self.functions.values():
            function.close()
        for streaming in self.streaming.values():
            streaming.stop()
        if self._environ is not None:
            self._environ.__exit__(None, None, None)
            self._environ = None

    def __enter__(self) -> DevServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


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

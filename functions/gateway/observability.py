"""Structured logs and metrics for every function (Powertools Logger's JSON formatter, CloudWatch EMF).

Each function's entry point calls :func:`configure_logging` once per cold start: every ``logging`` record of the
gateway then leaves as one JSON line with the request's correlation id (API Gateway's ``requestId``), the
workspace and route when the path names them, and the client and user once the handler knows them. Nothing logs a
token, code, secret or cookie: the gateway's log calls name routes, clients and causes, never credentials (a test
scans a whole flow's logs for every secret it used).

:class:`ObserveRequests` (ASGI middleware) measures each request and writes one EMF document to standard output
(CloudWatch turns it into metrics): ``Requests``, ``Errors`` by origin (``client`` for 4xx, ``upstream`` for the
proxy's 502/504, ``gateway`` for other 5xx), ``Latency`` and, on the proxy, ``UpstreamLatency`` and
``GatewayLatency`` (the request's time less the upstream's), per route and per MCP method; handlers add their own
counts through :func:`observation` (tokens issued and refreshed). A ``tools/call`` is also counted per tool (the
dimension set ``service, route, tool``), with a bounded dimension: a tool gets its own value only once the
upstream answered a call of it (so it exists there), at most :data:`MAX_TOOLS_PER_ROUTE` per route and container;
any other name is counted as :data:`OTHER_TOOL`, so a client cannot mint metrics by calling made-up names.
Failures whose origin is authorization (401/403, or a call that needs the user to connect an upstream account)
are also counted as ``ErrorsAuth``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import safe_json
from gateway.mcp.outcome import AUTH_REQUIRED, INPUT_REQUIRED, OK

logger = logging.getLogger("gateway.observability")
NAMESPACE = "McpGateway"
COUNT = "Count"
MILLISECONDS = "Milliseconds"
STATE_KEY = "observation"
UPSTREAM_STATUSES = (502, 504)  # the proxy's answers for an upstream that failed or timed out
AUTH_STATUSES = (401, 403)
MAX_TOOLS_PER_ROUTE = 50
OTHER_TOOL = "(other)"


@dataclass
class Observation:
    """One request's facts for its metrics; handlers fill in what only they know."""

    route: str | None = None
    method: str | None = None  # the MCP method (proxy) or grant type (token)
    upstream_ms: float | None = None
    tool: str | None = None
    tool_outcome: str | None = None  # gateway.mcp.outcome: how the tools/call ended
    client_id: str | None = None  # who called (properties of the EMF document, never dimensions: unbounded)
    user_id: str | None = None
    counts: dict[str, float] = field(default_factory=dict)

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


class Spans(Protocol):
    """Where the gateway's own work and its upstream calls are traced: X-Ray subsegments with ``Tracing=true``,
    nothing otherwise."""

    def span(self, name: str, **annotations: str | None) -> AbstractContextManager[None]: ...


class NoSpans:
    """Tracing off (the default): no span, no import of the X-Ray SDK."""

    def span(self, name: str, **annotations: str | None) -> AbstractContextManager[None]:
        return nullcontext()


NO_SPANS = NoSpans()


class XRaySpans:
    """X-Ray subsegments in the segment Lambda's active tracing opens for each invocation (the recorder the
    Powertools Tracer configures; imported only when tracing is on). Annotations are indexed: a trace is found by
    route, tool or the caller's W3C trace id. A recorder failure never fails the request."""

    def __init__(self) -> None:
        from aws_xray_sdk.core import xray_recorder

        self._recorder = xray_recorder

    @contextmanager
    def span(self, name: str, **annotations: str | None) -> Iterator[None]:
        try:
            subsegment = self._recorder.begin_subsegment(name)
            for key, value in annotations.items():
                if value and subsegment is not None:
                    subsegment.put_annotation(key, value)
        except Exception:  # tracing is observation: it never decides the request's fate
            logger.debug("no X-Ray subsegment for %s", name, exc_info=True)
            subsegment = None
        try:
            yield
        finally:
            if subsegment is not None:
                try:
                    self._recorder.end_subsegment()
                except Exception:
                    logger.debug("X-Ray subsegment %s not ended", name, exc_info=True)


def observation(scope: Scope) -> Observation | None:
    """The observation of the request in ``scope`` (None outside :class:`ObserveRequests`)."""
    state = scope.get("state")
    found = state.get(STATE_KEY) if isinstance(state, dict) else None
    return found if isinstance(found, Observation) else None


_formatter: Any = None
QUIET_LIBRARIES = ("botocore", "boto3")


def configure_logging(service: str, level: str = "INFO", *, json_lines: bool = True) -> None:
    """JSON logs for the process (once per cold start; a second call only changes the level). ``json_lines=False``
    (``GATEWAY_LOG_FORMAT=text``, what ``make dev`` sets) keeps the process's own handlers: the dev server prints
    readable lines for all its functions at once."""
    global _formatter
    root = logging.getLogger()
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    logging.getLogger("mangum").setLevel(logging.WARNING)  # a line per request: the API's access log has them
    if root.level > logging.DEBUG:
        # The AWS SDK's informational lines ("Found credentials in environment variables." at every cold start,
        # endpoint discovery) say nothing about the request; a level someone set on them explicitly is kept.
        for noisy in QUIET_LIBRARIES:
            if logging.getLogger(noisy).level == logging.NOTSET:
                logging.getLogger(noisy).setLevel(logging.WARNING)
    if _formatter is not None or not json_lines:
        return
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    _formatter = LambdaPowertoolsFormatter(service=service, utc=True)
    handler = _StandardError()
    handler.setFormatter(_formatter)
    # The Lambda runtime's own plain-text handler is replaced; any other (a test's capture) is kept.
    root.handlers = [h for h in root.handlers if "Lambda" not in type(h).__name__]
    root.addHandler(handler)


def reset_logging() -> None:
    """Undo :func:`configure_logging` (a test that configured it leaves the process as it found it)."""
    global _formatter
    root = logging.getLogger()
    root.handlers = [handler for handler in root.handlers if not isinstance(handler, _StandardError)]
    _formatter = None


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is logged (a test runner replaces and closes its own)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def add_log_keys(**keys: str | None) -> None:
    """Add keys to this request's log lines once a handler knows them (the client, the user)."""
    if _formatter is not None:
        _formatter.thread_safe_append_keys(**{name: value for name, value in keys.items() if value})


def _set_keys(**keys: str | None) -> None:
    if _formatter is not None:
        _formatter.thread_safe_clear_keys()
        _formatter.thread_safe_append_keys(**{name: value for name, value in keys.items() if value})


def adapter_request_context(scope: Scope) -> dict[str, Any]:
    """The API Gateway request context the Lambda Web Adapter passes as a header (the streaming deployment, where
    no event reaches the app); empty when there is none or it is not a JSON object."""
    for name, value in scope.get("headers") or ():
        if name == b"x-amzn-request-context":
            try:
                context = safe_json.loads(value)
            except ValueError:
                return {}
            return context if isinstance(context, dict) else {}
    return {}


def _trace_id(scope: Scope) -> str | None:
    from gateway.mcp.trace_context import of_request

    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope.get("headers") or ()]
    context = of_request(headers)
    return context.trace_id if context is not None else None


class ObserveRequests:
    """ASGI middleware: correlation keys for the request's logs, and its EMF metrics when it ends."""

    def __init__(
        self,
        app: ASGIApp,
        service: str,
        sink: Callable[[str], None] | None = print,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
        spans: Spans = NO_SPANS,
    ) -> None:
        """``sink`` takes each request's EMF document (None: no metrics, the logs' keys only); ``clock`` times the
        request, ``wall_clock`` dates its document; ``spans`` traces each request as the gateway's own work (X-Ray
        with tracing on)."""
        self.spans = spans
        self.app = app
        self.service = service
        self.sink = sink
        self.clock = clock
        self.wall_clock = wall_clock
        self.cold = True  # the container's first request counts a cold start
        self.known_tools: dict[str, set[str]] = {}
        """Per route, the tools the upstream answered a call of: the values the tool dimension may take."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        event = scope.get("aws.event") or {}
        context = event.get("requestContext") or adapter_request_context(scope)
        segments = [part for part in str(scope.get("path", "")).split("/") if part]
        if segments and segments[0].startswith("."):
            segments = []  # a well-known URL names no workspace in its first segments
        route = "/".join(segments[:2]) if len(segments) >= 3 else None
        seen = Observation(route=route)
        scope.setdefault("state", {})[STATE_KEY] = seen
        _set_keys(correlation_id=context.get("requestId"), workspace=segments[0] if segments else None, route=route)
        status = [500]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            with self.spans.span("gateway", service=self.service, route=route, w3c_trace_id=_trace_id(scope)):
                await self.app(scope, receive, recording_send)
        finally:
            elapsed_ms = (self.clock() - started) * 1000
            if self.sink is not None:
                self.sink(json.dumps(self.metrics(seen, status[0], elapsed_ms), separators=(",", ":")))
            _set_keys()

    def metrics(self, seen: Observation, status: int, elapsed_ms: float) -> dict[str, Any]:
        """The request's EMF document (CloudWatch Embedded Metric Format specification: the ``_aws`` directive names
        the namespace, the dimension sets and each metric with its unit; dimensions, metrics and metadata are
        top-level members). Written directly: Powertools' EMF provider cost ≈ 0.2 ms of CPU per request, a tenth of
        the proxy's own work."""
        metrics: list[tuple[str, str, float]] = [
            ("Requests", COUNT, 1.0),
            ("Latency", MILLISECONDS, round(elapsed_ms, 3)),
        ]
        if status >= 400:
            origin = "client" if status < 500 else "upstream" if status in UPSTREAM_STATUSES else "gateway"
            metrics.append((f"Errors{origin.capitalize()}", COUNT, 1.0))
        if status in AUTH_STATUSES or seen.tool_outcome == AUTH_REQUIRED:
            metrics.append(("ErrorsAuth", COUNT, 1.0))
        elif seen.tool_outcome not in (None, OK, INPUT_REQUIRED) and status < 400:
            metrics.append(("ErrorsUpstream", COUNT, 1.0))  # the tool's own failure, answered with a 200
        if seen.upstream_ms is not None:
            metrics.append(("UpstreamLatency", MILLISECONDS, round(seen.upstream_ms, 3)))
            metrics.append(("GatewayLatency", MILLISECONDS, round(max(elapsed_ms - seen.upstream_ms, 0), 3)))
        metrics.extend((name, COUNT, float(value)) for name, value in seen.counts.items())
        if self.cold:
            metrics.append(("ColdStart", COUNT, 1.0))
            self.cold = False
        # Dimension sets: per route for the dashboard, per function for the alarms, per tool for a call.
        dimensions = [["service"], ["route", "service"]]
        tool = self._tool_dimension(seen)
        directive = {
            "Namespace": NAMESPACE,
            "Dimensions": dimensions if tool is None else [*dimensions, ["route", "service", "tool"]],
            "Metrics": [{"Name": name, "Unit": unit} for name, unit, _ in metrics],
        }
        document: dict[str, Any] = {
            "_aws": {"Timestamp": int(self.wall_clock() * 1000), "CloudWatchMetrics": [directive]},
            "route": seen.route or "-",
            "service": self.service,
            "status": status,
        }
        if seen.method:
            document["method"] = seen.method
        if seen.client_id:
            document["client"] = seen.client_id
        if seen.user_id:
            document["user"] = seen.user_id
        if tool is not None:
            document["tool"] = tool  # the dimension's value: the tool's name, or (other)
        elif seen.tool:
            document["tool"] = seen.tool
        for name, _, value in metrics:
            document[name] = [float(value)]
        return document

    def _tool_dimension(self, seen: Observation) -> str | None:
        """The tool's value of the ``tool`` dimension (None: not a single ``tools/call``)."""
        if seen.tool is None or seen.route is None or seen.tool_outcome is None:
            return None
        known = self.known_tools.setdefault(seen.route, set())
        if seen.tool in known:
            return seen.tool
        answered = seen.tool_outcome == "ok"  # the upstream has the tool: its name is not the client's invention
        if answered and len(known) < MAX_TOOLS_PER_ROUTE and len(seen.tool) <= 128:
            known.add(seen.tool)
            return seen.tool
        return OTHER_TOOL

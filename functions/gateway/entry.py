"""What every Lambda function does once per cold start, in one place: build the composition root from the
environment, configure logging (and tracing when it is on), build the function's ASGI app, observe its requests,
wrap it for API Gateway events, and freeze what init built.

Each function's entry point (``functions/<name>/app.py``, the template's ``Handler``) is two lines that name its app
factory (``gateway.web.<name>.app.create_app``) and call :func:`build_function`. With the runtime module, this is the
only module of the core that builds the runtime (docs/architecture.md, "Dependency direction").
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mangum import Mangum
from mangum.handlers.api_gateway import HTTPGateway
from starlette.types import ASGIApp, Scope

from gateway.after_answer import AfterAnswer
from gateway.observability import ObserveRequests, configure_logging
from gateway.runtime import Runtime


@dataclass(frozen=True, slots=True)
class LambdaFunction:
    """One function's container: its runtime, its app, the app as served (observed), and the Lambda handler."""

    runtime: Runtime
    app: ASGIApp
    """The function's own ASGI app (tests drive it directly)."""
    asgi_app: ASGIApp
    """The app with its requests observed: what Mangum wraps, and what the streaming deployment serves under
    uvicorn behind the Lambda Web Adapter."""
    handler: Handler
    """The buffered deployment's handler: one API Gateway event in, one whole answer out."""


class _HttpApiEvent(HTTPGateway):
    """Mangum's HTTP API event handler with the ASGI scope built once per event (Mangum builds it for the app, then
    again when it turns the answer into a Lambda result: ≈ 40 µs of the proxy's per-request CPU)."""

    @cached_property
    def scope(self) -> Scope:
        scope: Scope = super().scope
        return scope


class Handler:
    """The buffered deployment's Lambda handler: Mangum's, which then says that the answer is ready, so the work the
    request left for after the answer (:mod:`gateway.after_answer`) can run while the answer travels."""

    def __init__(self, mangum: Callable[[dict[str, Any], Any], dict[str, Any]], after_answer: AfterAnswer) -> None:
        self._mangum = mangum
        self.after_answer = after_answer
        """The container's queue; a runner (the Lambda extension, the local stack's container) runs it."""
        self.answered: Callable[[], None] = _nothing
        """Called once each invocation's answer is ready (the Lambda extension's :meth:`LambdaExtension.settled`)."""

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            return self._mangum(event, context)
        finally:
            self.answered()


def _nothing() -> None:
    return None


def build_function(
    name: str,
    create_app: Callable[[Runtime], ASGIApp],
    *,
    environ: Mapping[str, str] | None = None,
) -> LambdaFunction:
    """The container of function ``name`` (its service name in logs, metrics and traces)."""
    environ = os.environ if environ is None else environ
    runtime = Runtime.from_environment(environ)  # the composition root: settings and configuration, once per cold start
    settings = runtime.settings
    configure_logging(name, settings.log_level, json_lines=settings.log_format == "json")
    if settings.tracing:  # opt-in: the X-Ray SDK's imports cost cold-start time
        from aws_lambda_powertools import Tracer

        Tracer(service=name)  # patches the AWS SDK and httpx; Lambda's active tracing sends the segments
    app = create_app(runtime)
    asgi_app = ObserveRequests(app, name, sink=print if settings.metrics else None, spans=runtime.spans)
    handler = Handler(Mangum(asgi_app, lifespan="off", custom_handlers=[_HttpApiEvent]), runtime.after_answer)
    api = environ.get("AWS_LAMBDA_RUNTIME_API")
    if api and settings.defer_after_answer and not settings.response_streaming:
        # On Lambda's buffered deployment: an internal extension runs the work after the answer (registered now,
        # during init, as the Extensions API requires). The streaming deployment's invocation ends with its last byte.
        from gateway.lambda_extension import LambdaExtension

        extension = LambdaExtension(api, runtime.after_answer)
        if extension.start():
            handler.answered = extension.settled
    # What init built lives as long as the container: no later collection needs to examine it again (the first
    # event's would have to walk all of it).
    gc.freeze()
    return LambdaFunction(runtime, app, asgi_app, handler)

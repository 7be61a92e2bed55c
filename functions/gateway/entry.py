"""What every Lambda function does once per cold start, in one place: build the composition root from the
environment, configure logging (and tracing when it is on), build the function's ASGI app, observe its requests,
wrap it for API Gateway events, and freeze what init built.

Each function's entry point (``functions/<name>/app.py``, the template's ``Handler``) is two lines that name its app
factory (``gateway.web.<name>.app.create_app``) and call :func:`build_function`. With the runtime module, this is the
only module of the core that builds the runtime (docs/architecture.md, "Dependency direction").
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mangum import Mangum
from starlette.types import ASGIApp

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
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    """The buffered deployment's handler: one API Gateway event in, one whole answer out."""


def build_function(name: str, create_app: Callable[[Runtime], ASGIApp]) -> LambdaFunction:
    """The container of function ``name`` (its service name in logs, metrics and traces)."""
    runtime = Runtime.from_environment()  # the composition root: settings and configuration, once per cold start
    settings = runtime.settings
    configure_logging(name, settings.log_level, json_lines=settings.log_format == "json")
    if settings.tracing:  # opt-in: the X-Ray SDK's imports cost cold-start time
        from aws_lambda_powertools import Tracer

        Tracer(service=name)  # patches the AWS SDK and httpx; Lambda's active tracing sends the segments
    app = create_app(runtime)
    asgi_app = ObserveRequests(app, name, sink=print if settings.metrics else None, spans=runtime.spans)
    handler = Mangum(asgi_app, lifespan="off")
    # What init built lives as long as the container: no later collection needs to examine it again (the first
    # event's would have to walk all of it).
    gc.freeze()
    return LambdaFunction(runtime, app, asgi_app, handler)

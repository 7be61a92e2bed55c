"""What the web apps need from their container, as Protocols: each app factory takes one of these, and the
composition root (``Runtime`` in ``runtime.py``, built by each function's ``app.py``) provides it. The apps never
look the runtime up themselves, so a test hands them an in-memory one and nothing is global.

:class:`LearnBaseUrl` is the middleware every app starts with: a deployment without a configured public base URL
learns it from the first API Gateway event (its ``apiId``, never the ``Host`` header) before any route is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.observability import adapter_request_context
from gateway.routes import RouteTable


class GatewayState(Protocol):
    """The part of a container every app reads: its clock, its public base URL and the configured routes."""

    clock: Callable[[], float]

    def now(self) -> int:
        """``int(clock())``: Unix seconds for every expiry decision."""
        ...

    @property
    def base_url(self) -> str: ...

    @property
    def routes(self) -> RouteTable: ...

    def observe_event(self, event: Mapping[str, Any] | None) -> None: ...


class LearnBaseUrl:
    """ASGI middleware: show the container each API Gateway event (Mangum puts it in ``scope["aws.event"]``; the
    Lambda Web Adapter of the streaming deployment passes the event's request context as a header)."""

    def __init__(self, app: ASGIApp, state: GatewayState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            event = scope.get("aws.event")
            if event is None and (context := adapter_request_context(scope)):
                event = {"requestContext": context}
            self.state.observe_event(event)
        await self.app(scope, receive, send)

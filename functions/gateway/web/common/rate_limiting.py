"""Rate limits at the web edge: who the client is (its address, from API Gateway) and the ``429`` answers.

The address is API Gateway's ``requestContext.http.sourceIp`` (``requestContext.identity.sourceIp`` from a REST API;
Mangum puts the event in ``scope["aws.event"]``),
falling back to the ASGI peer address (the dev server), and never a client-supplied ``X-Forwarded-For``.

OAuth endpoints answer ``429`` with ``Retry-After`` and the error ``temporarily_unavailable`` (RFC 6749
§4.1.2.1, also what OAuth 2.1 and RFC 7591 clients know as "try again later"). No registered OAuth error code is
about rate limiting; ``slow_down`` (RFC 8628 §3.5) belongs to device-flow polling and tells a client to lengthen
its polling interval, which a token or registration request has none of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from gateway.rate_limits import RateLimit, RateLimits, Verdict
from gateway.settings import Settings
from gateway.web.common.responses import error_response

RATE_LIMIT_ERROR = "temporarily_unavailable"


def client_address(request: Request) -> str:
    event = request.scope.get("aws.event")
    if isinstance(event, Mapping):
        context = event.get("requestContext") or {}
        # HTTP API (payload 2.0): requestContext.http.sourceIp; REST API (1.0): requestContext.identity.sourceIp
        for part in ("http", "identity"):
            source = (context.get(part) or {}).get("sourceIp")
            if isinstance(source, str) and source:
                return source
    client = request.client
    return client.host if client is not None else "unknown"


def too_many_requests(verdict: Verdict, headers: Mapping[str, str] | None = None) -> Response:
    """The OAuth-shaped ``429``."""
    return error_response(
        429,
        RATE_LIMIT_ERROR,
        f"too many requests; retry after {verdict.retry_after} seconds",
        {**(headers or {}), "Retry-After": str(verdict.retry_after)},
    )


class RateLimitedServices(Protocol):
    """What an app needs to apply the rate limits: the settings (the limits) and the shared counters."""

    settings: Settings

    @property
    def rate_limits(self) -> RateLimits: ...


def first_refusal(services: RateLimitedServices, checks: Iterable[tuple[RateLimit, str | None]]) -> Verdict | None:
    """Count the request against each (limit, subject) in turn (a missing subject is skipped); the first refusal
    stops there, so a refused request counts against nothing after it."""
    for limit, subject in checks:
        if subject is None:
            continue
        verdict = services.rate_limits.check(limit, subject)
        if not verdict.allowed:
            return verdict
    return None

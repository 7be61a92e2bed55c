"""ASGI app of the register function: Dynamic Client Registration (RFC 7591) at ``/{workspace}/{server}/register``.

Bare Starlette and pydantic (cold start). Errors are RFC 7591 §3.2.2 JSON bodies with a readable description; bad
input never produces a 500. Browser-based clients (MCP Inspector) may register from any origin: the endpoint is
public and reads no cookies, so CORS allows ``*``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from gateway import safe_json
from gateway.audit import AuditTrail
from gateway.config import GatewayConfig
from gateway.oauth.errors import OAuthError
from gateway.oauth.registration_endpoint import new_registration, parse_registration, registration_response
from gateway.rate_limits import RateLimit
from gateway.storage.ports import AlreadyExists, ClientStore, StorageError
from gateway.web.common.default_route import DefaultRouteAliases
from gateway.web.common.errors import exception_handlers
from gateway.web.common.rate_limiting import RateLimitedServices, client_address, first_refusal, too_many_requests
from gateway.web.common.responses import NO_STORE, error_response, json_response
from gateway.web.common.services import GatewayState, LearnBaseUrl

logger = logging.getLogger("gateway.register")

MAX_BODY_BYTES = 64 * 1024
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization",
    "Access-Control-Max-Age": "86400",
}
HEADERS = {**CORS, **NO_STORE}
# Every method reaches the endpoint, which answers 405 itself (with CORS headers) for anything but POST/OPTIONS.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _error(problem: OAuthError) -> Response:
    return error_response(problem.status_code, problem.error, problem.description, HEADERS)


class RegisterServices(GatewayState, RateLimitedServices, Protocol):
    """What the register function needs: the configuration (the unused-registration lifetime) and the store."""

    config: GatewayConfig

    @property
    def clients(self) -> ClientStore: ...

    @property
    def audit(self) -> AuditTrail: ...


async def _json_body(request: Request) -> object:
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise OAuthError(
            "invalid_client_metadata", "send the client metadata as JSON with 'Content-Type: application/json'"
        )
    declared = request.headers.get("content-length", "")
    too_large = OAuthError(
        "invalid_client_metadata", f"the registration request is larger than {MAX_BODY_BYTES} bytes", 413
    )
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise too_large
    try:
        return safe_json.loads(body)
    except ValueError:
        raise OAuthError("invalid_client_metadata", "the request body is not valid JSON") from None


async def register(services: RegisterServices, request: Request) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS)
    route = services.routes.get(request.path_params["workspace"], request.path_params["server"])
    if route is None:
        description = (
            f"no MCP server {request.path_params['server']!r} in workspace {request.path_params['workspace']!r}"
        )
        return error_response(404, "not_found", description, HEADERS)
    if request.method != "POST":
        return error_response(
            405, "method_not_allowed", "register a client with POST", {**HEADERS, "Allow": "POST, OPTIONS"}
        )
    # Counted before anything is parsed or stored: past the limit, a flood stores nothing.
    limit = RateLimit("register-ip", services.settings.rate_limit_register_per_ip)
    refused = first_refusal(services, [(limit, client_address(request))])
    if refused is not None:
        return too_many_requests(refused, HEADERS)
    try:
        metadata = parse_registration(await _json_body(request))
        now = services.now()
        ttl = services.config.oauth.unused_client_ttl_seconds
        store = services.clients
        for _attempt in range(3):
            issued = new_registration(metadata, route, now, ttl)
            try:
                store.create(issued.client)
                break
            except AlreadyExists:
                continue  # a random 192-bit id collided: practically never; draw again
        else:
            raise OAuthError("server_error", "could not allocate a client_id")
    except OAuthError as problem:
        return _error(problem)
    except StorageError:
        logger.warning("client registration failed: the client store is unavailable")
        return _error(OAuthError("temporarily_unavailable", "registration is unavailable right now; try again shortly"))
    logger.info(
        "registered client %s (%r, %s) at %s",
        issued.client.client_id,
        issued.client.client_name,
        issued.client.token_endpoint_auth_method,
        route.key,
    )
    services.audit.record(
        "client.registered", workspace=route.workspace_name, route_key=route.key, client_id=issued.client.client_id,
        client_name=issued.client.client_name[:200], auth_method=issued.client.token_endpoint_auth_method,
    )  # fmt: skip
    # RFC 7591 §3.2.1: 201 Created with the registered metadata; it holds a secret, so never cached.
    return json_response(registration_response(issued), 201, HEADERS)


def create_app(services: RegisterServices) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return await register(services, request)

    return Starlette(
        routes=[Path("/{workspace}/{server}/register", endpoint, methods=ALL_METHODS)],
        middleware=[
            Middleware(LearnBaseUrl, state=services),
            Middleware(DefaultRouteAliases, names=frozenset({"register"}), state=services),
        ],
        exception_handlers=dict(exception_handlers()),
    )

"""ASGI app of the token function: ``/{workspace}/{server}/token`` and ``/{workspace}/{server}/revoke``.

Bare Starlette plus pydantic (cold start). The handlers are thin: check method, content type and size, parse the form,
authenticate the client, make one call into :class:`TokenService`, serialise. Every response carries
``Cache-Control: no-store`` and ``Pragma: no-cache`` (RFC 6749 §5.1) and ``Access-Control-Allow-Origin: *``: these
endpoints use no cookies, so any browser-based client (e.g. the MCP Inspector) may call them.

Faults of the store, the signer or the shared secret (throttling, an unreachable endpoint) become
``503 temporarily_unavailable``: each adapter raises its port's error (``StorageError``, ``KeyServiceUnavailable``,
``SecretUnavailableError``), so this module knows no SDK. The service writes after signing and in one write or
transaction, so nothing is half-done when that happens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from gateway.oauth.errors import OAuthError
from gateway.oauth.token_requests import (
    AnyTokenRequest,
    RevocationRequest,
    parse_form,
    parse_revocation_request,
    parse_token_request,
)
from gateway.oauth.token_service import TokenService
from gateway.observability import observation
from gateway.rate_limits import RateLimit, client_subject
from gateway.routes import Route
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError
from gateway.tokens.keys import KeyServiceUnavailable
from gateway.web.common.default_route import DefaultRouteAliases
from gateway.web.common.errors import exception_handlers
from gateway.web.common.rate_limiting import RateLimitedServices, client_address, first_refusal, too_many_requests
from gateway.web.common.responses import NO_STORE, error_response, json_response
from gateway.web.common.services import GatewayState, LearnBaseUrl

if TYPE_CHECKING:
    from gateway.oauth.client_assertions import ClientAssertions
    from gateway.oauth.clients import ClientInfo, ClientResolver
    from gateway.oauth.token_grants import TokenGrants

logger = logging.getLogger("gateway.token")

MAX_BODY_BYTES = 16 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
ALLOWED_METHODS = "POST, OPTIONS"

CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "DPoP-Nonce"}
PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": ALLOWED_METHODS,
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version, DPoP",
    "Access-Control-Max-Age": "86400",
}
COMMON_HEADERS = {**NO_STORE, **CORS_HEADERS}


class ClientAuthenticator(Protocol):
    """Client authentication at the token and revocation endpoints (RFC 6749 §2.3): ``none``,
    ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt`` (RFC 7523 §2.2). Raises
    ``OAuthError("invalid_client", ..., 401)``."""

    async def authenticate(
        self, route: Route, form: Mapping[str, str], authorization: str | None, now: int
    ) -> ClientInfo: ...

    def note_use(self, client: ClientInfo, now: int) -> None: ...


class TokenServices(GatewayState, RateLimitedServices, Protocol):
    """What the token function needs of its container."""

    @property
    def token_service(self) -> TokenService: ...

    @property
    def client_resolver(self) -> ClientResolver: ...

    @property
    def client_assertions(self) -> ClientAssertions: ...

    @property
    def token_grants(self) -> TokenGrants: ...


class ResolverAuthenticator:
    """Client authentication by the container's client resolver (built on first use: a request that fails
    before authentication never builds it)."""

    def __init__(self, services: TokenServices) -> None:
        self._services = services

    async def authenticate(
        self, route: Route, form: Mapping[str, str], authorization: str | None, now: int
    ) -> ClientInfo:
        from gateway.oauth.client_auth import authenticate_client

        assertions = self._services.client_assertions if "client_assertion" in form else None
        return await authenticate_client(self._services.client_resolver, route, form, authorization, now, assertions)

    def note_use(self, client: ClientInfo, now: int) -> None:
        self._services.client_resolver.note_use(client, now)


def _error(problem: OAuthError, *, basic_realm: str | None = None) -> Response:
    headers = {**COMMON_HEADERS, **{k: v for k, v in problem.headers.items() if k != "WWW-Authenticate"}}
    if problem.error == "invalid_client" and basic_realm is not None:
        # RFC 6749 §5.2: a 401 for a client that authenticated with Basic carries the matching challenge.
        headers["WWW-Authenticate"] = f'Basic realm="{basic_realm}", charset="UTF-8"'
    return error_response(problem.status_code, problem.error, problem.description, headers)


def _unavailable() -> Response:
    return error_response(
        503,
        "temporarily_unavailable",
        "the authorization server is temporarily unavailable; nothing was changed, please retry",
        {**COMMON_HEADERS, "Retry-After": "1"},
    )


def _uses_basic(authorization: str | None) -> bool:
    return authorization is not None and authorization[:6].lower() == "basic "


async def _read_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        raise OAuthError("invalid_request", f"the request body must be {FORM_CONTENT_TYPE} (RFC 6749 §3.2)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise OAuthError("invalid_request", f"the request body exceeds {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise OAuthError("invalid_request", f"the request body exceeds {MAX_BODY_BYTES} bytes")
    return parse_form(bytes(body))


Parsed = TypeVar("Parsed")
_Action = Callable[[Request, Route, Parsed, "ClientInfo", int], Awaitable[Response]]


class TokenEndpoints:
    def __init__(self, services: TokenServices, authenticator: ClientAuthenticator) -> None:
        self._services = services
        self.authenticator = authenticator

    async def token(self, request: Request) -> Response:
        return await self._handle(request, parse_token_request, self._token)

    async def revoke(self, request: Request) -> Response:
        return await self._handle(request, parse_revocation_request, self._revoke)

    async def _handle(
        self, request: Request, parse: Callable[[dict[str, str]], Parsed], action: _Action[Parsed]
    ) -> Response:
        """The steps every request takes: method, route, the address's limit, the form, the request's own
        parameters, client authentication (RFC 6749 §2.3, a step of its own), the client's limit, the grant."""
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PREFLIGHT_HEADERS)
        if request.method != "POST":
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use POST",
                {**COMMON_HEADERS, "Allow": ALLOWED_METHODS},
            )
        workspace_name = request.path_params["workspace"]
        server_name = request.path_params["server"]
        route = self._services.routes.get(workspace_name, server_name)
        if route is None:
            return error_response(
                404, "not_found", f"no MCP server {server_name!r} in workspace {workspace_name!r}", COMMON_HEADERS
            )
        authorization = request.headers.get("authorization")
        settings = self._services.settings
        address = client_address(request)
        by_address = RateLimit("token-ip", settings.rate_limit_token_per_ip)
        refused = first_refusal(self._services, [(by_address, address)])
        if refused is not None:
            return too_many_requests(refused, COMMON_HEADERS)
        try:
            form = await _read_form(request)
            parsed = parse(form)
            now = self._services.now()
            client = await self.authenticator.authenticate(route, form, authorization, now)
            # Counted once authenticated, so that naming a client is not enough to spend its limit (rate_limits.py).
            authenticated = client.authenticated_by is not None
            subject = client_subject(client.client_id, authenticated=authenticated, address=address)
            by_client = RateLimit("token-client", settings.rate_limit_token_per_client)
            refused = first_refusal(self._services, [(by_client, subject)])
            if refused is not None:
                return too_many_requests(refused, COMMON_HEADERS)
            return await action(request, route, parsed, client, now)
        except OAuthError as problem:
            return _error(problem, basic_realm=route.issuer if _uses_basic(authorization) else None)
        except (StorageError, KeyServiceUnavailable, SecretUnavailableError) as fault:
            # The ports' own errors (the DynamoDB, KMS and Secrets Manager adapters translate theirs): 503, and the
            # service wrote nothing half-way (see the module docstring). Anything else is a bug: the JSON 500.
            logger.warning("%s at %s: %s", type(fault).__name__, request.url.path, fault)
            return _unavailable()

    async def _token(
        self, request: Request, route: Route, grant_request: AnyTokenRequest, client: ClientInfo, now: int
    ) -> Response:
        issued = await self._services.token_grants.issue(
            route, grant_request, client, request.headers.getlist("dpop"), self._token_urls(route), now
        )
        seen = observation(request.scope)
        if seen is not None:
            seen.count("TokensRefreshed" if issued.refreshed else "TokensIssued")
        self.authenticator.note_use(client, now)
        return json_response(issued.response.body(), 200, {**COMMON_HEADERS, **issued.headers})

    def _token_urls(self, route: Route) -> list[str]:
        """The token endpoint as a client may address it (a DPoP proof's ``htu``): the route's, and the root alias
        for the default route (from the configured base URL, never the Host header)."""
        urls = [route.endpoint("token")]
        if self._services.routes.default_route == route:
            urls.append(f"{route.base_url}/token")
        return urls

    async def _revoke(
        self, request: Request, route: Route, revocation: RevocationRequest, client: ClientInfo, now: int
    ) -> Response:
        self._services.token_service.revoke(route, client.client_id, revocation.token, revocation.token_type_hint, now)
        # RFC 7009 §2.2: 200 whether or not there was anything to revoke; the body is ignored by clients.
        return Response(status_code=200, headers=COMMON_HEADERS)


def create_app(services: TokenServices, *, authenticator: ClientAuthenticator | None = None) -> Starlette:
    """The token function's app; client authentication is the container's unless another is injected."""
    endpoints = TokenEndpoints(services, authenticator or ResolverAuthenticator(services))
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Path("/{workspace}/{server}/token", endpoints.token, methods=methods),
            Path("/{workspace}/{server}/revoke", endpoints.revoke, methods=methods),
        ],
        middleware=[
            Middleware(LearnBaseUrl, state=services),
            Middleware(DefaultRouteAliases, names=frozenset({"token", "revoke"}), state=services),
        ],
        exception_handlers=dict(exception_handlers()),
    )

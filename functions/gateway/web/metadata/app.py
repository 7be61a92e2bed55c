"""ASGI app of the metadata function (bare Starlette: this is the most frequently cold-started function)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from gateway.oauth.metadata_documents import authorization_server_metadata, protected_resource_metadata
from gateway.routes import Route
from gateway.web.common.cors import PUBLIC_DOCUMENT_HEADERS
from gateway.web.common.errors import exception_handlers
from gateway.web.common.responses import error_response, json_response
from gateway.web.common.services import GatewayState, LearnBaseUrl

if TYPE_CHECKING:
    from gateway.tokens.keys import PublicKeySource  # cryptography: only the JWKS needs it

CACHEABLE = {**PUBLIC_DOCUMENT_HEADERS, "Cache-Control": "public, max-age=300"}

Endpoint = Callable[[Request], Awaitable[Response]]


class MetadataServices(GatewayState, Protocol):
    """What the metadata function needs: the routes, and the public keys for the JWKS (the only KMS read)."""

    @property
    def public_keys(self) -> PublicKeySource: ...


class MetadataEndpoints:
    def __init__(self, services: MetadataServices) -> None:
        self._services = services

    def _route_or_none(self, request: Request) -> Route | None:
        routes = self._services.routes
        if "workspace" not in request.path_params:
            return routes.default_route
        return routes.get(request.path_params["workspace"], request.path_params["server"])

    def _not_found(self, request: Request) -> Response:
        return _not_found(request, self._services.routes.workspace(request.path_params.get("workspace", "")) is None)

    def document(self, build: Callable[[Route], dict[str, object]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
            route = self._route_or_none(request)
            if route is None:
                return self._not_found(request)
            return json_response(build(route), headers=CACHEABLE)

        return endpoint

    async def client_metadata(self, request: Request) -> Response:
        """The gateway's Client ID Metadata Document for a route whose upstream uses OAuth: the gateway's
        ``client_id`` at upstream authorization servers that support metadata documents
        (gateway.upstream.client_registration)."""
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
        route = self._route_or_none(request)
        if route is None:
            return self._not_found(request)
        from gateway.upstream.client_metadata import client_metadata_document, oauth_upstreams

        if not oauth_upstreams(route):  # a virtual route's document serves its upstreams that use OAuth
            return error_response(404, "not_found", "this route's upstream does not use OAuth", PUBLIC_DOCUMENT_HEADERS)

        return json_response(client_metadata_document(route), headers=CACHEABLE)

    async def jwks(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
        from gateway.tokens.keys import jwks

        return json_response(jwks(self._services.public_keys.public_keys()), headers=CACHEABLE)


def _not_found(request: Request, unknown_workspace: bool) -> Response:
    if "workspace" in request.path_params:
        workspace, server = request.path_params["workspace"], request.path_params["server"]
        if unknown_workspace:
            description = f"no workspace {workspace!r} on this gateway"
        else:
            description = f"no MCP server {server!r} in workspace {workspace!r}"
    else:
        description = "this gateway has no default route: use the path-scoped discovery URL of a route"
    return error_response(404, "not_found", description, PUBLIC_DOCUMENT_HEADERS)


def create_app(services: MetadataServices) -> Starlette:
    endpoints = MetadataEndpoints(services)
    prm = endpoints.document(protected_resource_metadata)
    as_metadata = endpoints.document(authorization_server_metadata)
    openid = endpoints.document(lambda route: authorization_server_metadata(route, openid_form=True))
    methods = ["GET", "OPTIONS"]
    scoped = "/{workspace}/{server}"
    return Starlette(
        routes=[
            # RFC 9728 §3.1: path-scoped form and the root form (default route).
            Path(f"/.well-known/oauth-protected-resource{scoped}/mcp", prm, methods=methods),
            Path("/.well-known/oauth-protected-resource", prm, methods=methods),
            # RFC 8414 §3.1 (path inserted), OIDC Discovery with path inserted and appended: every URL MCP
            # 2025-11-25 §"Authorization Server Metadata Discovery" tells clients to try.
            Path(f"/.well-known/oauth-authorization-server{scoped}", as_metadata, methods=methods),
            Path(f"/.well-known/openid-configuration{scoped}", openid, methods=methods),
            Path(f"{scoped}/.well-known/openid-configuration", openid, methods=methods),
            Path(f"{scoped}/.well-known/oauth-authorization-server", as_metadata, methods=methods),
            Path("/.well-known/oauth-authorization-server", as_metadata, methods=methods),
            Path("/.well-known/openid-configuration", openid, methods=methods),
            Path("/.well-known/jwks.json", endpoints.jwks, methods=methods),
            Path(f"{scoped}/oauth-client.json", endpoints.client_metadata, methods=methods),
        ],
        middleware=[Middleware(LearnBaseUrl, state=services)],
        exception_handlers=dict(exception_handlers()),
    )

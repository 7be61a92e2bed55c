"""ASGI app of the metadata function (bare Starlette: this is the most frequently cold-started function)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from gateway.oauth.discovery import authorization_server_metadata, protected_resource_metadata
from gateway.routes import Route
from gateway.runtime import get_runtime
from gateway.web.cors import PUBLIC_DOCUMENT_HEADERS
from gateway.web.errors import exception_handlers
from gateway.web.responses import error_response, json_response

CACHEABLE = {**PUBLIC_DOCUMENT_HEADERS, "Cache-Control": "public, max-age=300"}

Endpoint = Callable[[Request], Awaitable[Response]]


def _route_or_none(request: Request) -> Route | None:
    runtime = get_runtime()
    runtime.observe_event(request.scope.get("aws.event"))
    if "workspace" not in request.path_params:
        return runtime.routes.default_route
    return runtime.routes.get(request.path_params["workspace"], request.path_params["server"])


def _not_found(request: Request) -> Response:
    if "workspace" in request.path_params:
        workspace, server = request.path_params["workspace"], request.path_params["server"]
        if get_runtime().routes.workspace(workspace) is None:
            description = f"no workspace {workspace!r} on this gateway"
        else:
            description = f"no MCP server {server!r} in workspace {workspace!r}"
    else:
        description = "this gateway has no default route: use the path-scoped discovery URL of a route"
    return error_response(404, "not_found", description, PUBLIC_DOCUMENT_HEADERS)


def _document(build: Callable[[Route], dict[str, object]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
        route = _route_or_none(request)
        if route is None:
            return _not_found(request)
        return json_response(build(route), headers=CACHEABLE)

    return endpoint


async def client_metadata_endpoint(request: Request) -> Response:
    """The gateway's Client ID Metadata Document for a route whose upstream uses OAuth: the gateway's ``client_id``
    at upstream authorization servers that support metadata documents (gateway.upstream.registration)."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
    route = _route_or_none(request)
    if route is None:
        return _not_found(request)
    if route.server.auth.type != "oauth":
        return error_response(404, "not_found", "this route's upstream does not use OAuth", PUBLIC_DOCUMENT_HEADERS)
    from gateway.upstream.client_metadata import client_metadata_document

    return json_response(client_metadata_document(route), headers=CACHEABLE)


async def jwks_endpoint(request: Request) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=PUBLIC_DOCUMENT_HEADERS)
    from gateway.tokens.keys import jwks

    return json_response(jwks(get_runtime().public_keys.public_keys()), headers=CACHEABLE)


def create_app() -> Starlette:
    prm = _document(protected_resource_metadata)
    as_metadata = _document(authorization_server_metadata)
    openid = _document(lambda route: authorization_server_metadata(route, openid_form=True))
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
            Path("/.well-known/jwks.json", jwks_endpoint, methods=methods),
            Path(f"{scoped}/oauth-client.json", client_metadata_endpoint, methods=methods),
        ],
        exception_handlers=dict(exception_handlers()),
    )

"""ASGI app of the authorize function: /authorize, sign-in at the workspace's identity provider, consent, and
connecting upstream accounts.

The flow (all state in the pending authorization, stored with a TTL; the handlers are stateless):

1. ``GET /{ws}/{server}/authorize`` validates the request (:mod:`gateway.oauth.authorize_request`), stores a
   :class:`PendingAuthorization` bound to this browser and sends it to the workspace's sign-in
   (:func:`gateway.web.authorize.sign_in_flow.start_sign_in`).
2. ``/{ws}/login`` (POST) or ``GET /{ws}/oidc/callback`` yields the user (:mod:`gateway.web.authorize.sign_in_pages`).
3. Consent (:mod:`gateway.web.authorize.consent`) issues the code, or the denial goes back to the client.
4. ``/{ws}/{server}/connect`` and ``/{ws}/{server}/connect/callback`` connect upstream accounts
   (:mod:`gateway.web.authorize.upstream_connect`, imported by the requests that need it).

Every page is HTML with a strict CSP and frame protection (:mod:`gateway.web.common.pages`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as Path

from gateway.oauth.authorize_request import (
    RedirectableError,
    UnsafeToRedirect,
    error_redirect,
    parse_authorize_request,
    redirects_automatically,
)
from gateway.routes import Route
from gateway.web.authorize import connections, consent, console_sign_in, sign_in_pages
from gateway.web.authorize.sign_in_flow import AuthorizeServices, Context, sign_in_starts_refused, start_sign_in
from gateway.web.common.default_route import DefaultRouteAliases
from gateway.web.common.pages import PageError, page_exception_handlers, redirect
from gateway.web.common.services import LearnBaseUrl

Page = Callable[[Context], Awaitable[Response]]


async def authorize(ctx: Context) -> Response:
    request = ctx.request
    workspace_name, server_name = request.path_params["workspace"], request.path_params["server"]
    route = ctx.services.routes.get(workspace_name, server_name)
    if route is None:
        raise PageError(404, "Not found", f"There is no MCP server {server_name!r} in workspace {workspace_name!r}.")
    refused = sign_in_starts_refused(ctx)  # before the client is looked up (a CIMD fetch) or anything is stored
    if refused is not None:
        return refused
    now = ctx.now()
    try:
        parsed = await parse_authorize_request(
            request.query_params.multi_items(), route, ctx.services.client_resolver, now
        )
    except UnsafeToRedirect as problem:
        raise PageError(problem.status_code, problem.title, problem.description) from None
    except RedirectableError as problem:
        if redirects_automatically(problem.client):
            return redirect(error_redirect(route, problem))
        raise refused_request_page(route, problem) from None

    pending = ctx.authorization.start(route, parsed, now)
    # The sign-in funnel's first stage (the admin console): recorded once the request proved valid and was stored.
    ctx.services.audit.record(
        "authorize.started", workspace=route.workspace_name, route_key=route.key, client_id=parsed.client.client_id
    )
    return await start_sign_in(ctx, route, pending, parsed.client.client_name)


def refused_request_page(route: Route, problem: RedirectableError) -> PageError:
    """An invalid request from a client whose redirect URI the gateway does not trust: the error page, with the
    client's error answer as a link that says where it goes (RFC 9700 §4.11.2)."""
    client_name = problem.client.client_name if problem.client is not None else "the application"
    destination = urlsplit(problem.redirect_uri)
    return PageError(
        400,
        "The application's request was refused",
        f"{client_name} sent a sign-in request that {route.title} cannot accept: {problem.error.description}.",
        hint=f"The link below returns the error to {destination.scheme}://{destination.netloc}.",
        return_url=error_redirect(route, problem),
        client_name=client_name,
    )


async def _upstream_connect(ctx: Context) -> Response:
    from gateway.web.authorize.upstream_connect import connect

    return await connect(ctx)


async def _upstream_connect_callback(ctx: Context) -> Response:
    from gateway.web.authorize.upstream_connect import connect_callback

    return await connect_callback(ctx)


def create_app(services: AuthorizeServices) -> Starlette:
    def endpoint(handler: Page) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await handler(Context(services, request))

        return serve

    return Starlette(
        routes=[
            Path("/{workspace}/{server}/authorize", endpoint(authorize), methods=["GET"]),
            Path("/{workspace}/{server}/consent", endpoint(consent.consent), methods=["GET", "POST"]),
            Path("/{workspace}/login", endpoint(sign_in_pages.login), methods=["GET", "POST"]),
            Path("/{workspace}/oidc/callback", endpoint(sign_in_pages.oidc_callback), methods=["GET"]),
            Path("/{workspace}/{server}/connect", endpoint(_upstream_connect), methods=["GET"]),
            Path("/{workspace}/{server}/connect/callback", endpoint(_upstream_connect_callback), methods=["GET"]),
            Path("/{workspace}/connections", endpoint(connections.connections), methods=["GET", "POST"]),
            Path("/{workspace}/admin/sign-in", endpoint(console_sign_in.admin_sign_in), methods=["GET"]),
        ],
        middleware=[
            Middleware(LearnBaseUrl, state=services),
            Middleware(DefaultRouteAliases, names=frozenset({"authorize"}), state=services),
        ],
        exception_handlers=dict(page_exception_handlers()),
    )

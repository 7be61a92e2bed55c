"""``GET /{workspace}/admin/sign-in``: the admin console's sign-in, the workspace's own (its identity provider, the
same flow as consent). The console (the admin function) sends a signed-out browser here; a pending authorization of
the stand-in client :data:`~gateway.web.authorize.sign_in_flow.ADMIN_CONSOLE_CLIENT_ID` goes through the sign-in,
which starts the workspace's session (:mod:`gateway.web.common.session`), and the browser returns to the console,
which lets in only the workspace's ``admins``. A browser already signed in to the workspace goes straight back."""

from __future__ import annotations

from starlette.responses import Response

from gateway.routes import Route
from gateway.storage.records import PendingAuthorization
from gateway.web.authorize.sign_in_flow import (
    ADMIN_CONSOLE_CLIENT_ID,
    Context,
    sign_in_starts_refused,
    stand_in_pending,
    start_sign_in,
    workspace_of,
)
from gateway.web.common import cookies, session
from gateway.web.common.pages import PageError, redirect


def console_url(ctx: Context, workspace_name: str) -> str:
    return f"{ctx.base_url}/{workspace_name}/admin"


async def admin_sign_in(ctx: Context) -> Response:
    workspace_name = ctx.request.path_params["workspace"]
    workspace_of(ctx, workspace_name)
    signed_in = session.current(
        ctx.request.cookies, workspace_name, base_url=ctx.base_url, secret=ctx.secret, now=ctx.now()
    )
    if signed_in is not None:
        return redirect(console_url(ctx, workspace_name))
    # The sign-in is the workspace's; a pending authorization names a route, so it carries the workspace's first.
    route = next((r for r in ctx.services.routes.all() if r.workspace_name == workspace_name), None)
    if route is None:
        raise PageError(404, "Not found", "This workspace has no MCP server.")
    refused = sign_in_starts_refused(ctx)  # a signed-out visit stores a pending authorization: counted first
    if refused is not None:
        return refused
    pending = stand_in_pending(ctx, route, ADMIN_CONSOLE_CLIENT_ID, console_url(ctx, workspace_name))
    return await start_sign_in(ctx, route, pending, "The admin console")


def after_sign_in(ctx: Context, route: Route, pending: PendingAuthorization) -> Response:
    """The sign-in succeeded (the caller starts the session): back to the console, which decides who gets in."""
    ctx.authorization.abandon(pending.pending_id)
    response = redirect(console_url(ctx, route.workspace_name))
    cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    return response

"""``GET /{workspace}/admin/sign-in``: the admin console's sign-in, the workspace's own (its identity provider, the
same flow as consent). The console (the admin function) sends a signed-out browser here; a pending authorization of
the stand-in client :data:`~gateway.web.authorize.sign_in_flow.ADMIN_CONSOLE_CLIENT_ID` goes through the sign-in,
which starts the workspace's session (:mod:`gateway.web.common.session`), and the browser returns to the console,
which lets in only the workspace's ``admins``. A browser already signed in to the workspace goes straight back."""

from __future__ import annotations

from starlette.responses import Response

from gateway.web.authorize.sign_in_flow import (
    ADMIN_CONSOLE_CLIENT_ID,
    Context,
    sign_in_for_page,
    workspace_of,
)
from gateway.web.common import session
from gateway.web.common.pages import redirect


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
    return await sign_in_for_page(
        ctx, workspace_name, ADMIN_CONSOLE_CLIENT_ID, console_url(ctx, workspace_name), "The admin console"
    )

"""``/{workspace}/connections``: a user's own page of the applications they authorized, the upstream accounts they
connected and the gateway API keys they own (docs/non-interactive.md), each with Revoke / Disconnect.

The user signs in through the workspace's identity provider, as for consent (a pending authorization of the stand-in
client :data:`~gateway.web.sign_in_flow.MY_CONNECTIONS_CLIENT_ID`); the page then keeps a signed, ``__Host-``
cookie naming the user for :data:`SESSION_SECONDS`. Revoking and disconnecting are POSTs carrying a CSRF token
bound to the user and workspace; the page has the consent page's security headers (CSP, no framing, no caching).
Each action is written to the audit trail. A revoked grant's tokens, and a revoked key, are refused from their next
request. Keys are made by an administrator (``mcp-gateway admin create-key``); this page never shows a key's value.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.api_keys.issuing import revoke_key
from gateway.config import OAuthUpstreamAuth
from gateway.oauth.errors import OAuthError
from gateway.routes import Route
from gateway.storage.ports import StorageError
from gateway.storage.records import PendingAuthorization
from gateway.upstream.subjects import is_shared
from gateway.web import cookies
from gateway.web.pages import PageError, page, redirect
from gateway.web.sign_in_flow import MY_CONNECTIONS_CLIENT_ID, Context, stand_in_pending, start_sign_in, workspace_of

SESSION_SECONDS = 900
_COOKIE = "mcpgw-connections"


def _cookie_name(ctx: Context, workspace_name: str) -> str:
    name = f"{_COOKIE}-{workspace_name}"
    return f"__Host-{name}" if cookies.is_secure(ctx.base_url) else name


def _url(ctx: Context, workspace_name: str) -> str:
    return f"{ctx.base_url}/{workspace_name}/connections"


def _signed_in_user(ctx: Context, workspace_name: str) -> str | None:
    signed = ctx.request.cookies.get(_cookie_name(ctx, workspace_name))
    value = cookies.unsign(f"connections:{workspace_name}", signed, ctx.secret) if signed else None
    if value is None:
        return None
    user_id, _, expires = value.rpartition("|")
    return user_id if user_id and expires.isdigit() and int(expires) > ctx.now() else None


def _csrf(ctx: Context, workspace_name: str, user_id: str) -> str:
    message = f"connections-csrf\x00{workspace_name}\x00{user_id}".encode()
    return hmac.new(ctx.secret, message, hashlib.sha256).hexdigest()


def _per_user_oauth_routes(ctx: Context, workspace_name: str) -> list[Route]:
    """The workspace's routes (each upstream of its virtual routes) whose upstream each user connects."""
    found = []
    for route in ctx.services.routes.all():
        if route.workspace_name == workspace_name:
            found += route.members() if route.is_virtual else [route]
    return [route for route in found if isinstance(route.server.auth, OAuthUpstreamAuth) and not is_shared(route)]


async def connections(ctx: Context) -> Response:
    workspace_name = ctx.request.path_params["workspace"]
    workspace_of(ctx, workspace_name)
    if ctx.request.method not in ("GET", "POST"):
        raise HTTPException(405)
    user_id = _signed_in_user(ctx, workspace_name)
    if user_id is None:
        if ctx.request.method == "POST":
            raise PageError(400, "Signed out", "Your session on this page ended. Open it again to sign in.")
        return await _sign_in(ctx, workspace_name)
    if ctx.request.method == "POST":
        return await _act(ctx, workspace_name, user_id)
    return await _show(ctx, workspace_name, user_id)


async def _sign_in(ctx: Context, workspace_name: str) -> Response:
    # The sign-in is the workspace's; a pending authorization names a route, so it carries the workspace's first.
    route = next((r for r in ctx.services.routes.all() if r.workspace_name == workspace_name), None)
    if route is None:
        raise PageError(404, "Not found", "This workspace has no MCP server.")
    pending = stand_in_pending(ctx, route, MY_CONNECTIONS_CLIENT_ID, _url(ctx, workspace_name))
    return await start_sign_in(ctx, route, pending, "Your connections")


def after_sign_in(ctx: Context, route: Route, pending: PendingAuthorization, user_id: str) -> Response:
    """The sign-in for this page succeeded: remember the user in a signed cookie, and show the page."""
    ctx.grants.delete_pending(pending.pending_id)
    workspace_name = route.workspace_name
    value = f"{user_id}|{ctx.now() + SESSION_SECONDS}"
    response = redirect(_url(ctx, workspace_name))
    response.set_cookie(
        _cookie_name(ctx, workspace_name),
        cookies.sign(f"connections:{workspace_name}", value, ctx.secret),
        max_age=SESSION_SECONDS,
        path="/",
        secure=cookies.is_secure(ctx.base_url),
        httponly=True,
        samesite="lax",
    )
    cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    return response


async def _show(ctx: Context, workspace_name: str, user_id: str) -> Response:
    now = ctx.now()
    applications: list[dict[str, Any]] = []
    for grant in ctx.grants.grants_of_user(workspace_name, user_id):
        if not grant.is_usable(now):
            continue
        route = ctx.services.routes.by_key(grant.route_key)
        name = grant.client_id
        if route is not None:
            try:
                name = (await ctx.services.client_resolver.resolve(route, grant.client_id, now)).client_name
            except (OAuthError, StorageError):  # an unknown or unreachable client still shows by its id
                name = grant.client_id
        applications.append(
            {
                "grant_id": grant.grant_id,
                "client": name,
                "route": route.title if route is not None else grant.route_key,
                "since": _when(grant.created_at),
                "last_used": _when(grant.rotated_at or grant.created_at),
                "scopes": " ".join(grant.scopes),
            }
        )
    connectable = _per_user_oauth_routes(ctx, workspace_name)
    vault = ctx.services.upstream_oauth.vault if connectable else None  # upstream OAuth: loaded only when used
    accounts = [
        {"route_key": route.key, "title": _title(ctx, route), "server": route.server_name}
        for route in connectable
        if vault is not None and vault.is_connected(route.key, user_id)
    ]
    keys = [
        {
            "key_id": key.key_id,
            "name": key.name,
            "routes": ", ".join(key.servers),
            "tools": ", ".join(key.tools),
            "created": _when(key.created_at),
            "expires": _when(key.expires_at) if key.expires_at is not None else "never",
        }
        for key in sorted(ctx.services.api_keys.keys_of_user(workspace_name, user_id), key=lambda k: k.created_at)
        if key.is_usable(now)
    ]
    return page(
        "connections.html",
        page_title="Your connections",
        workspace_title=workspace_of(ctx, workspace_name).title,
        user_name=user_id,
        action=_url(ctx, workspace_name),
        csrf=_csrf(ctx, workspace_name, user_id),
        applications=applications,
        accounts=accounts,
        keys=keys,
    )


def _when(unix: int) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(ctx: Context, route: Route) -> str:
    """A route's title; for one upstream of a virtual route, the route's and the upstream's."""
    if route.member is None:
        return route.title
    parent = ctx.services.routes.get(route.workspace_name, route.server_name)
    return f"{parent.title if parent is not None else route.server_name} · {route.member}"


async def _act(ctx: Context, workspace_name: str, user_id: str) -> Response:
    form = await ctx.request.form()
    presented = form.get("csrf")
    expected = _csrf(ctx, workspace_name, user_id)
    if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise PageError(400, "Request refused", "The form could not be verified (CSRF check failed). Reload the page.")
    grant_id, route_key, key_id = form.get("revoke"), form.get("disconnect"), form.get("revoke_key")
    audit = ctx.services.audit
    if isinstance(grant_id, str):
        grant = ctx.grants.get_grant(grant_id)
        if grant is None or grant.user_id != user_id or grant.workspace != workspace_name:
            raise PageError(404, "Not found", "That application is not one of yours.")
        ctx.grants.revoke_grant(grant_id, ctx.now(), "user")
        audit.record(
            "grant.revoked", workspace=workspace_name, route_key=grant.route_key, user_id=user_id,
            client_id=grant.client_id, grant_id=grant_id, reason="user",
        )  # fmt: skip
    elif isinstance(route_key, str):
        route = next((r for r in _per_user_oauth_routes(ctx, workspace_name) if r.key == route_key), None)
        if route is None:
            raise PageError(404, "Not found", "That account is not one of this workspace's.")
        await ctx.services.upstream_oauth.vault.disconnect(route.key, user_id)
        audit.record("upstream.disconnected", workspace=workspace_name, route_key=route.key, user_id=user_id, by="user")
    elif isinstance(key_id, str):
        key = ctx.services.api_keys.get_key(key_id)
        if key is None or key.user_id != user_id or key.workspace != workspace_name:
            raise PageError(404, "Not found", "That key is not one of yours.")
        revoke_key(ctx.services.api_keys, audit, key, ctx.now(), by="user")
    else:
        raise PageError(400, "Invalid request", "Choose an application to revoke or an account to disconnect.")
    return redirect(_url(ctx, workspace_name))

"""``/{workspace}/connections``: a user's own page of the applications they authorized, the upstream accounts they
connected and the gateway API keys they own (docs/non-interactive.md), each with Revoke / Disconnect.

Who is signed in comes from the workspace's session cookie (:mod:`gateway.web.common.session`), which every sign-in
sets: right after signing in for an MCP client's consent, the same browser opens this page without signing in again.
Without a session, the page sends the browser through the workspace's sign-in, as for consent (a pending authorization
of the stand-in client :data:`~gateway.web.authorize.sign_in_flow.MY_CONNECTIONS_CLIENT_ID`).

Revoke, Disconnect and Revoke key each ask first: the list links to a confirmation (``GET ?revoke=<grant id>``,
``?disconnect=<route key>``, ``?revoke_key=<key id>``) whose button POSTs the action; the page then reports what was
done (``?revoked=...``, shown only for the user's own item in its new state). Sign out ends the session. Every POST
carries the session's CSRF token (bound to the session, so it changes at each sign-in and ends with it); the page has
the consent page's security headers (CSP, no framing, no caching). Each action is written to the audit trail. A
revoked grant's tokens, and a revoked key, are refused from their next request. Keys are made by an administrator
(``mcp-gateway admin create-key``); this page never shows a key's value.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.api_keys.issuing import revoke_key
from gateway.config import OAuthUpstreamAuth
from gateway.oauth.errors import OAuthError
from gateway.routes import Route
from gateway.storage.ports import StorageError
from gateway.storage.records import ApiKey, Grant
from gateway.upstream.subjects import is_shared
from gateway.web.authorize.scope_text import describe_scopes
from gateway.web.authorize.sign_in_flow import (
    MY_CONNECTIONS_CLIENT_ID,
    Context,
    sign_in_for_page,
    workspace_of,
)
from gateway.web.common import session
from gateway.web.common.pages import PageError, page, redirect
from gateway.web.common.session import Session

CSRF_PURPOSE = "connections"
SIGNED_OUT = "signed_out"  # the query parameter of the page shown after Sign out


def _url(ctx: Context, workspace_name: str, **query: str) -> str:
    url = f"{ctx.base_url}/{workspace_name}/connections"
    return f"{url}?{urlencode(query)}" if query else url


def _session(ctx: Context, workspace_name: str) -> Session | None:
    return session.current(ctx.request.cookies, workspace_name, base_url=ctx.base_url, secret=ctx.secret, now=ctx.now())


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
    signed_in = _session(ctx, workspace_name)
    if signed_in is None:
        if ctx.request.method == "POST":
            raise PageError(400, "Signed out", "Your session on this page ended. Open it again to sign in.")
        if SIGNED_OUT in ctx.request.query_params:
            return _page(ctx, workspace_name, "connections_signed_out.html", None, page_title="Signed out")
        return await sign_in_for_page(
            ctx, workspace_name, MY_CONNECTIONS_CLIENT_ID, _url(ctx, workspace_name), "Your connections"
        )
    if ctx.request.method == "POST":
        return await _act(ctx, workspace_name, signed_in)
    confirmation = await _confirmation(ctx, workspace_name, signed_in)
    return confirmation if confirmation is not None else await _show(ctx, workspace_name, signed_in)


def _page(ctx: Context, workspace_name: str, template: str, signed_in: Session | None, **context: Any) -> Response:
    return page(
        template,
        workspace_title=workspace_of(ctx, workspace_name).title,
        user_name=signed_in.display_name if signed_in is not None else None,
        action=_url(ctx, workspace_name),
        csrf=session.csrf_token(signed_in, ctx.secret, CSRF_PURPOSE) if signed_in is not None else "",
        **context,
    )


# --- what the user has --------------------------------------------------------------------------------------


async def _client_name(ctx: Context, grant: Grant) -> str:
    route = ctx.services.routes.by_key(grant.route_key)
    if route is None:
        return grant.client_id
    try:
        return (await ctx.services.client_resolver.resolve(route, grant.client_id, ctx.now())).client_name
    except (OAuthError, StorageError):  # an unknown or unreachable client still shows by its id
        return grant.client_id


def _route_title(ctx: Context, grant: Grant) -> str:
    route = ctx.services.routes.by_key(grant.route_key)
    return route.title if route is not None else grant.route_key


def _when(unix: int) -> str:
    return datetime.datetime.fromtimestamp(unix, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(ctx: Context, route: Route) -> str:
    """A route's title; for one upstream of a virtual route, the route's and the upstream's."""
    if route.member is None:
        return route.title
    parent = ctx.services.routes.get(route.workspace_name, route.server_name)
    return f"{parent.title if parent is not None else route.server_name} · {route.member}"


def _own_grant(ctx: Context, workspace_name: str, user_id: str, grant_id: object) -> Grant | None:
    grant = ctx.authorization.grant(grant_id) if isinstance(grant_id, str) and len(grant_id) <= 200 else None
    return grant if grant is not None and grant.user_id == user_id and grant.workspace == workspace_name else None


def _own_key(ctx: Context, workspace_name: str, user_id: str, key_id: object) -> ApiKey | None:
    key = ctx.services.api_keys.get_key(key_id) if isinstance(key_id, str) and len(key_id) <= 200 else None
    return key if key is not None and key.user_id == user_id and key.workspace == workspace_name else None


def _own_account(ctx: Context, workspace_name: str, route_key: object) -> Route | None:
    return next((r for r in _per_user_oauth_routes(ctx, workspace_name) if r.key == route_key), None)


async def _show(ctx: Context, workspace_name: str, signed_in: Session) -> Response:
    now = ctx.now()
    user_id = signed_in.user_id
    applications: list[dict[str, Any]] = []
    for grant in ctx.authorization.grants_of_user(workspace_name, user_id):
        if not grant.is_usable(now):
            continue
        applications.append(
            {
                "grant_id": grant.grant_id,
                "client": await _client_name(ctx, grant),
                "route": _route_title(ctx, grant),
                "since": _when(grant.created_at),
                "last_used": _when(grant.rotated_at or grant.created_at),
                "scopes": describe_scopes(grant.scopes),
                "via": "granted by your organization's identity provider" if grant.obtained_by == "id_jag" else None,
                "confirm_url": _url(ctx, workspace_name, revoke=grant.grant_id),
            }
        )
    connectable = _per_user_oauth_routes(ctx, workspace_name)
    vault = ctx.services.upstream_oauth.vault if connectable else None  # upstream OAuth: loaded only when used
    accounts = [
        {
            "route_key": route.key,
            "title": _title(ctx, route),
            "confirm_url": _url(ctx, workspace_name, disconnect=route.key),
        }
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
            "expires": _when(key.expires_at) if key.expires_at is not None else None,
            "confirm_url": _url(ctx, workspace_name, revoke_key=key.key_id),
        }
        for key in sorted(ctx.services.api_keys.keys_of_user(workspace_name, user_id), key=lambda k: k.created_at)
        if key.is_usable(now)
    ]
    return _page(
        ctx,
        workspace_name,
        "connections.html",
        signed_in,
        page_title="Your connections",
        done=await _report(ctx, workspace_name, signed_in),
        applications=applications,
        accounts=accounts,
        keys=keys,
    )


async def _report(ctx: Context, workspace_name: str, signed_in: Session) -> str | None:
    """What the last action did, from the page's query (``?revoked=<grant id>``...): said only of the user's own
    item, and only once it is in that state, so a crafted link cannot make the page claim anything."""
    query = ctx.request.query_params
    user_id = signed_in.user_id
    if "revoked" in query:
        grant = _own_grant(ctx, workspace_name, user_id, query["revoked"])
        if grant is not None and grant.status == "revoked":
            return (
                f"Revoked: {await _client_name(ctx, grant)} can no longer use {_route_title(ctx, grant)} as you. "
                "Its tokens stop working at its next request; it asks you again if it needs access."
            )
    elif "disconnected" in query:
        route = _own_account(ctx, workspace_name, query["disconnected"])
        if route is not None and not ctx.services.upstream_oauth.vault.is_connected(route.key, user_id):
            return (
                f"Disconnected: the gateway forgot your account for {_title(ctx, route)}. "
                "You connect it again when an application next needs it."
            )
    elif "revoked_key" in query:
        key = _own_key(ctx, workspace_name, user_id, query["revoked_key"])
        if key is not None and key.status == "revoked":
            return f"Revoked the API key {key.name} ({key.key_id}): it stops working at its next request."
    return None


# --- acting: confirm, then do ---------------------------------------------------------------------------------


async def _confirmation(ctx: Context, workspace_name: str, signed_in: Session) -> Response | None:
    """The question before an action (``GET ?revoke=...``), or None when the page was not asked for one."""
    query = ctx.request.query_params
    user_id = signed_in.user_id
    if "revoke" in query:
        grant = _own_grant(ctx, workspace_name, user_id, query["revoke"])
        if grant is None or not grant.is_usable(ctx.now()):
            raise PageError(404, "Not found", "That application is not one of yours, or no longer has access.")
        client, route = await _client_name(ctx, grant), _route_title(ctx, grant)
        question = f"Revoke {client}'s access to {route}?"
        consequence = (
            f"{client} can no longer use {route} as you: its tokens stop working at its next request. "
            "It will ask for your approval again if it needs access."
        )
        field, value, button = "revoke", grant.grant_id, "Revoke access"
    elif "disconnect" in query:
        route_found = _own_account(ctx, workspace_name, query["disconnect"])
        if route_found is None:
            raise PageError(404, "Not found", "That account is not one of this workspace's.")
        title = _title(ctx, route_found)
        question = f"Disconnect your account for {title}?"
        consequence = (
            "The gateway forgets your credential for it. Applications that use it ask you to connect it again."
        )
        field, value, button = "disconnect", route_found.key, "Disconnect"
    elif "revoke_key" in query:
        key = _own_key(ctx, workspace_name, user_id, query["revoke_key"])
        if key is None or not key.is_usable(ctx.now()):
            raise PageError(404, "Not found", "That key is not one of yours, or is no longer valid.")
        question = f"Revoke the API key {key.name}?"
        consequence = (
            f"Every job or agent that uses {key.key_id} is refused from its next request. "
            "An administrator can make you a new key."
        )
        field, value, button = "revoke_key", key.key_id, "Revoke key"
    else:
        return None
    return _page(
        ctx,
        workspace_name,
        "connections_confirm.html",
        signed_in,
        page_title=question,
        question=question,
        consequence=consequence,
        field=field,
        value=value,
        button=button,
        cancel_url=_url(ctx, workspace_name),
    )


async def _act(ctx: Context, workspace_name: str, signed_in: Session) -> Response:
    form = await ctx.request.form()
    if not session.csrf_matches(signed_in, ctx.secret, CSRF_PURPOSE, form.get("csrf")):
        raise PageError(400, "Request refused", "The form could not be verified (CSRF check failed). Reload the page.")
    user_id = signed_in.user_id
    audit = ctx.services.audit
    if form.get("sign_out") is not None:
        response = redirect(_url(ctx, workspace_name, **{SIGNED_OUT: "1"}))
        session.end(response, workspace_name, base_url=ctx.base_url)
        return response
    grant_id, route_key, key_id = form.get("revoke"), form.get("disconnect"), form.get("revoke_key")
    if isinstance(grant_id, str):
        grant = _own_grant(ctx, workspace_name, user_id, grant_id)
        if grant is None:
            raise PageError(404, "Not found", "That application is not one of yours.")
        ctx.authorization.revoke_grant(grant, ctx.now(), reason="user")
        return redirect(_url(ctx, workspace_name, revoked=grant.grant_id))
    if isinstance(route_key, str):
        route = _own_account(ctx, workspace_name, route_key)
        if route is None:
            raise PageError(404, "Not found", "That account is not one of this workspace's.")
        await ctx.services.upstream_oauth.vault.disconnect(route.key, user_id)
        audit.record("upstream.disconnected", workspace=workspace_name, route_key=route.key, user_id=user_id, by="user")
        return redirect(_url(ctx, workspace_name, disconnected=route.key))
    if isinstance(key_id, str):
        key = _own_key(ctx, workspace_name, user_id, key_id)
        if key is None:
            raise PageError(404, "Not found", "That key is not one of yours.")
        revoke_key(ctx.services.api_keys, audit, key, ctx.now(), by="user")
        return redirect(_url(ctx, workspace_name, revoked_key=key.key_id))
    raise PageError(400, "Invalid request", "Choose an application to revoke or an account to disconnect.")

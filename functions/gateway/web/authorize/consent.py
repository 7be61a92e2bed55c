"""Consent for an MCP client's authorization (authorize function): ``/{ws}/{server}/consent``, and what happens
once the user has signed in.

The route's access policy decides first: a user who is not allowed sees a denial page and the client gets
``access_denied`` (no code is issued). A remembered consent of (user, client, route) whose grant is still usable
issues the code at once; otherwise the consent page asks, and its POST (CSRF token checked) approves or denies.
The code (random, stored as its SHA-256 with the grant id the token endpoint will create) goes back to the client
with ``state`` and ``iss`` (RFC 9207); the pending authorization is deleted once a code or an error is issued.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import AlreadyAnswered
from gateway.oauth.authorize_request import AuthorizingClient, redirect_with
from gateway.oauth.redirect_uris import browser_destination, is_loopback_redirect
from gateway.routes import Route
from gateway.storage.records import ClientSource, PendingAuthorization
from gateway.web.authorize.scope_text import describe_scopes
from gateway.web.authorize.sign_in_flow import (
    EXPIRED,
    Context,
    check_csrf,
    client_of,
    error_url,
    finish,
    forget_cookie,
    held_pending,
    route_of,
)
from gateway.web.common.pages import PageError, page, redirect

# Redirect hosts users of MCP clients commonly see; any other https host is highlighted on the consent page.
KNOWN_REDIRECT_HOSTS = frozenset(
    {"claude.ai", "claude.com", "vscode.dev", "insiders.vscode.dev", "chatgpt.com", "chat.openai.com"}
)
SOURCE_LABELS: dict[ClientSource, str] = {
    "dcr": "Registered itself with this server (dynamic client registration)",
    "cimd": "Its client metadata document, published at its own URL",
    "preregistered": "Pre-registered by an administrator of this workspace",
}


def issue_code(ctx: Context, route: Route, pending: PendingAuthorization, *, approved: bool = False) -> Response:
    """RFC 6749 §4.1.2: the code goes to the redirect URI with ``state`` and, per RFC 9207 §2, ``iss``."""
    try:
        code = ctx.authorization.issue_code(route, pending, ctx.now(), approved=approved)  # once per pending
    except AlreadyAnswered:
        raise PageError(400, "Sign-in expired", EXPIRED) from None
    url = redirect_with(pending.redirect_uri, {"code": code, "state": pending.state, "iss": route.issuer})
    return forget_cookie(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))


def deny(
    ctx: Context,
    route: Route,
    pending: PendingAuthorization,
    client_name: str,
    *,
    heading: str,
    message: str,
    detail: str | None,
    client_reason: str,
) -> Response:
    """A clear denial page; the client learns ``access_denied`` through its return link (no code is issued)."""
    return_url = error_url(route, pending, "access_denied", client_reason)
    response = page(
        "denied.html",
        403,
        page_title=heading,
        heading=heading,
        message=message,
        detail=detail,
        return_url=return_url,
        client_name=client_name,
        workspace_title=route.workspace.title,
        user_name=pending.user_name or pending.user_id,
    )
    return finish(ctx, pending, response)


def upstream_accounts_to_connect(ctx: Context, route: Route, user: SignedInUser) -> list[Any]:
    """Upstream accounts the user must connect before approving: the route's upstream when it uses per-user OAuth
    and this user has not connected it (or, for an admin, the shared account nobody has connected yet)."""
    if route.server.auth.type != "oauth" and not any(m.server.auth.type == "oauth" for m in route.members()):
        return []
    from gateway.web.authorize.upstream_connect import (
        accounts_to_connect,  # upstream OAuth: loaded by routes that use it
    )

    return accounts_to_connect(ctx.services.upstream_oauth.vault, route, user)


def _remembered(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> bool:
    """A standing approval that still holds, and no upstream account left to connect."""
    remembered = ctx.authorization.remembered(route, pending, ctx.now())
    return remembered and not upstream_accounts_to_connect(ctx, route, user)


async def after_sign_in(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> Response:
    """An MCP client's sign-in succeeded: check the access policy, then issue the code or ask for consent."""
    if not route.server.access.allows(user.id, user.groups):
        client = await client_of(ctx, route, pending.client_id)
        pending = dataclasses.replace(pending, user_id=user.id, user_name=user.name)
        return deny(
            ctx,
            route,
            pending,
            client.client_name,
            heading="You do not have access",
            message=f"{user.display_name} is not allowed to use {route.title} in this workspace.",
            detail="Ask an administrator of this workspace to grant you access.",
            client_reason=f"user is not allowed to use {route.key}",
        )
    pending = ctx.authorization.signed_in(pending, user, ctx.now())
    if _remembered(ctx, route, pending, user):
        return issue_code(ctx, route, pending)
    ctx.authorization.hold(pending)
    url = f"{route.endpoint('consent')}?{urlencode({'p': pending.pending_id})}"
    return redirect(url, redirect_uri=pending.redirect_uri)


@dataclass(frozen=True, slots=True)
class RedirectView:
    display: str
    description: str
    warning: str | None
    """Shown in a visible alert when the destination deserves a second look."""


def describe_redirect(redirect_uri: str, client: AuthorizingClient) -> RedirectView:
    """How the consent page presents where the browser goes after approval."""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if is_loopback_redirect(redirect_uri):
        return RedirectView(f"{scheme}://{parts.netloc}", "an application on this computer", None)
    if scheme != "https":
        opens = browser_destination(redirect_uri)
        display = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
        if opens is None:
            return RedirectView(display, f"an application on this device ({scheme}: link)", None)
        return RedirectView(
            display,
            f"a {scheme}: link, which opens another application",
            f"After you approve, your browser hands the answer to another application ({scheme}: link), which "
            f"opens {opens}. An application on this device does not normally return that way; approve only if "
            "you trust it and you started this connection yourself.",
        )
    host = (parts.hostname or "").lower()
    known = host in KNOWN_REDIRECT_HOSTS
    if client.source == "cimd":  # its metadata document was fetched from this host over https
        known = known or host == (urlsplit(client.client_id).hostname or "").lower()
    if known:
        return RedirectView(host, "a known site", None)
    return RedirectView(
        host,
        "a website",
        f"After you approve, your browser goes to {host}, a website this gateway does not know. Approve only if "
        "you trust it and you started this connection yourself.",
    )


def _consent_view(route: Route, pending: PendingAuthorization, client: AuthorizingClient) -> dict[str, Any]:
    upstreams = [str(route.server.upstream)] if route.server.upstream else [m.server.upstream for m in route.members()]
    return {
        "client": {
            "name": client.client_name,
            "identified_by": SOURCE_LABELS[client.source],
            "metadata_url": client.client_id if client.source == "cimd" else None,
            "client_uri": client.client_uri,
        },
        "redirect": describe_redirect(pending.redirect_uri, client),
        "route": {
            "title": route.title,
            "key": route.key,
            "description": route.server.description,
            "upstream_host": ", ".join(dict.fromkeys(urlsplit(str(url)).netloc for url in upstreams)),
        },
        "scopes": describe_scopes(pending.scopes),
    }


def _connect_failure(request: Request, account_route: Route) -> str | None:
    """Why the last Connect of this account failed, when the connect callback sent the browser back saying so."""
    if request.query_params.get("failed") != account_route.key:
        return None
    from gateway.web.authorize.upstream_connect import connect_failure

    return connect_failure(account_route, request.query_params.get("why"))


async def consent(ctx: Context) -> Response:
    request: Request = ctx.request
    workspace_name, server_name = request.path_params["workspace"], request.path_params["server"]
    if request.method not in ("GET", "POST"):
        raise HTTPException(405)
    form = await request.form() if request.method == "POST" else None
    pending_id = form.get("p") if form is not None else request.query_params.get("p")
    pending = held_pending(ctx, pending_id if isinstance(pending_id, str) else None, workspace_name)
    route = route_of(ctx, pending)
    if route.server_name != server_name or pending.user_id is None:
        raise PageError(400, "Sign-in expired", EXPIRED)
    client = await client_of(ctx, route, pending.client_id)
    user = SignedInUser(pending.user_id, pending.user_name, pending.user_groups)
    accounts = upstream_accounts_to_connect(ctx, route, user)

    if form is not None:
        check_csrf(pending, form)
        decision = form.get("decision")
        if decision == "deny":
            try:
                ctx.authorization.deny(route, pending, ctx.now())
            except AlreadyAnswered:
                raise PageError(400, "Sign-in expired", EXPIRED) from None
            url = error_url(route, pending, "access_denied", "the user denied the request")
            return forget_cookie(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))
        if decision != "approve":
            raise PageError(400, "Invalid request", "Choose Approve or Deny.")
        if accounts:
            raise PageError(400, "Accounts to connect", "Connect the listed accounts before approving.")
        return issue_code(ctx, route, pending, approved=True)

    return page(
        "consent.html",
        redirect_uri=pending.redirect_uri,
        page_title=f"Allow {client.client_name}?",
        workspace_title=route.workspace.title,
        user_name=user.display_name,
        action=route.endpoint("consent"),
        pending_id=pending.pending_id,
        csrf=pending.csrf_token,
        upstream_accounts=[
            {
                "title": account.title,
                "upstream_host": account.upstream_host,
                "shared": account.shared,
                "connect_url": account.route.connect_endpoint({"p": pending.pending_id, "csrf": pending.csrf_token}),
                "problem": _connect_failure(request, account.route),
            }
            for account in accounts
        ],
        can_approve=not accounts,
        **_consent_view(route, pending, client),
    )

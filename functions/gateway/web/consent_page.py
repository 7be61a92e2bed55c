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
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.identity.user import SignedInUser
from gateway.oauth.authorize_request import AuthorizingClient, redirect_with
from gateway.oauth.hashing import hash_secret, random_token
from gateway.oauth.redirect_uris import is_loopback_redirect
from gateway.routes import Route
from gateway.storage.records import AuditKind, AuthorizationCode, ClientSource, PendingAuthorization
from gateway.web.pages import PageError, page, redirect
from gateway.web.sign_in_flow import (
    EXPIRED,
    Context,
    check_csrf,
    client_of,
    error_url,
    finish,
    held_pending,
    route_of,
)

logger = logging.getLogger("gateway.authorize")

# Redirect hosts users of MCP clients commonly see; any other https host is highlighted on the consent page.
KNOWN_REDIRECT_HOSTS = frozenset(
    {"claude.ai", "claude.com", "vscode.dev", "insiders.vscode.dev", "chatgpt.com", "chat.openai.com"}
)
SCOPE_DESCRIPTIONS = {
    "mcp": "Use this MCP server on your behalf: list and call its tools, read its resources and prompts.",
    "offline_access": "Stay connected while you are away (the application may refresh its access).",
}
SOURCE_LABELS: dict[ClientSource, str] = {
    "dcr": "Registered itself with this server (dynamic client registration)",
    "cimd": "Its client metadata document, published at its own URL",
    "preregistered": "Pre-registered by an administrator of this workspace",
}


def _record(ctx: Context, kind: AuditKind, route: Route, pending: PendingAuthorization, **detail: str) -> None:
    ctx.services.audit.record(
        kind, workspace=route.workspace_name, route_key=route.key, user_id=pending.user_id,
        client_id=pending.client_id, **detail,
    )  # fmt: skip


def issue_code(ctx: Context, route: Route, pending: PendingAuthorization) -> Response:
    """RFC 6749 §4.1.2: the code goes to the redirect URI with ``state`` and, per RFC 9207 §2, ``iss``."""
    assert pending.user_id is not None
    now = ctx.now()
    code = random_token(32)
    ctx.grants.put_code(
        AuthorizationCode(
            code_hash=hash_secret(code),
            grant_id=random_token(18),  # the token endpoint creates the grant under this id
            route_key=route.key,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            code_challenge=pending.code_challenge,
            scopes=pending.scopes,
            resource=pending.resource,
            user_id=pending.user_id,
            user_name=pending.user_name,
            user_groups=pending.user_groups,
            created_at=now,
            expires_at=now + ctx.services.config.oauth.authorization_code_ttl_seconds,
        )
    )
    logger.info("authorization code issued for route %s, client %s", route.key, pending.client_id[:100])
    url = redirect_with(pending.redirect_uri, {"code": code, "state": pending.state, "iss": route.issuer})
    return finish(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))


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
    from gateway.web.upstream_connect import accounts_to_connect  # upstream OAuth: loaded by routes that use it

    return accounts_to_connect(ctx.services.upstream_oauth.vault, route, user)


def _remembered(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> bool:
    """A standing approval of (user, client, route) whose grant is still usable and covers the scopes asked."""
    consent = ctx.grants.get_consent(route.key, pending.client_id, user.id)
    if consent is None or not set(pending.scopes) <= set(consent.scopes):
        return False
    grant = ctx.grants.get_grant(consent.grant_id)
    return grant is not None and grant.is_usable(ctx.now()) and not upstream_accounts_to_connect(ctx, route, user)


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
    pending = dataclasses.replace(
        pending,
        user_id=user.id,
        user_name=user.name,
        user_groups=user.groups,
        idp_state=None,  # a replayed IdP callback no longer matches
        idp_nonce=None,
        idp_code_verifier=None,
    )
    if _remembered(ctx, route, pending, user):
        return issue_code(ctx, route, pending)
    ctx.grants.put_pending(pending)
    url = f"{route.endpoint('consent')}?{urlencode({'p': pending.pending_id})}"
    return redirect(url, redirect_uri=pending.redirect_uri)


@dataclass(frozen=True, slots=True)
class RedirectView:
    display: str
    description: str
    warning: bool


def describe_redirect(redirect_uri: str, client: AuthorizingClient) -> RedirectView:
    """How the consent page presents where the browser goes after approval."""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    if is_loopback_redirect(redirect_uri):
        return RedirectView(f"{scheme}://{parts.netloc}", "an application on this computer", False)
    if scheme != "https":
        return RedirectView(
            f"{parts.scheme}://{parts.netloc}", f"an application on this device ({scheme}: link)", False
        )
    host = (parts.hostname or "").lower()
    known = host in KNOWN_REDIRECT_HOSTS
    if client.source == "cimd":  # its metadata document was fetched from this host over https
        known = known or host == (urlsplit(client.client_id).hostname or "").lower()
    return RedirectView(host, "a known site" if known else "a website", not known)


def _consent_view(route: Route, pending: PendingAuthorization, client: AuthorizingClient) -> dict[str, Any]:
    upstreams = [str(route.server.upstream)] if route.server.upstream else [m.server.upstream for m in route.members()]
    return {
        "client": {
            "name": client.client_name,
            "identified_by": SOURCE_LABELS[client.source],
            "metadata_url": client.client_id if client.source == "cimd" else None,
            "client_uri": client.client_uri,
            "logo_uri": client.logo_uri if (client.logo_uri or "").startswith("https://") else None,
        },
        "redirect": describe_redirect(pending.redirect_uri, client),
        "route": {
            "title": route.title,
            "key": route.key,
            "description": route.server.description,
            "upstream_host": ", ".join(dict.fromkeys(urlsplit(str(url)).netloc for url in upstreams)),
        },
        "scopes": [
            {"name": name, "description": SCOPE_DESCRIPTIONS.get(name, f"Permission {name!r} on this server.")}
            for name in pending.scopes
        ],
    }


def _connect_failure(request: Request, account_route: Route) -> str | None:
    """Why the last Connect of this account failed, when the connect callback sent the browser back saying so."""
    if request.query_params.get("failed") != account_route.key:
        return None
    from gateway.web.upstream_connect import connect_failure

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
            _record(ctx, "consent.denied", route, pending)
            url = error_url(route, pending, "access_denied", "the user denied the request")
            return finish(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))
        if decision != "approve":
            raise PageError(400, "Invalid request", "Choose Approve or Deny.")
        if accounts:
            raise PageError(400, "Accounts to connect", "Connect the listed accounts before approving.")
        _record(ctx, "consent.granted", route, pending, scope=" ".join(pending.scopes))
        return issue_code(ctx, route, pending)

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

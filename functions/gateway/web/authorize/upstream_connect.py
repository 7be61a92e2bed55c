"""Connecting upstream accounts in the browser (authorize function): ``GET /{ws}/{server}/connect`` and
``GET /{ws}/{server}/connect/callback`` (``?upstream=`` names one upstream of a virtual route).

Three ways in, one flow:

- **From the consent page.** The user signed in for an MCP client's /authorize; the consent page lists the route's
  upstream (per-user OAuth, not yet connected) with a Connect link ``connect?p=<pending>&csrf=<token>``. The
  pending authorization's cookie proves the browser, the CSRF token that the page came from the gateway. After the
  upstream flow the browser returns to the consent page, where Approve is now enabled.
- **From a connect link** (``connect?for=<token>``, e.g. in a ``-32042`` error; :mod:`gateway.upstream.connect_links`).
  The link is not pre-authenticated: the gateway stores a pending authorization of the kind "upstream connect" (client
  id :data:`~gateway.web.authorize.sign_in_flow.CONNECT_CLIENT_ID`), runs the workspace's normal sign-in (dev login or
  OIDC), and continues only if the signed-in user is the link's subject — or a workspace admin for a shared link. A page
  then names the upstream's authorization server and a Continue link starts the flow (a page rather than a redirect: the
  sign-in form's CSP ``form-action`` would block a redirect chain that leaves the gateway).
- **Shared accounts**: ``connect`` with neither parameter, on a ``mode: shared`` route, is the admin's connect URL:
  anyone may open it, only a workspace admin (config ``admins``) can complete it.

The callback finds its flow from ``state`` and the signed flow cookie (:mod:`gateway.upstream.oauth_flow`), checks
that the answer arrived at the callback of the upstream the flow was started for (each upstream has its own, RFC 9700
§4.4.2.2) and ``iss`` (RFC 9207), exchanges the code, stores the token set in the vault, and returns to the consent
page or shows "Connected — return to your application".
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from gateway.config import OAuthUpstreamAuth
from gateway.identity.user import SignedInUser
from gateway.routes import Route
from gateway.storage.records import PendingAuthorization
from gateway.upstream import oauth_flow
from gateway.upstream.client_metadata import connect_callback_url
from gateway.upstream.client_registration import RegistrationError
from gateway.upstream.connect_links import SHARED_SUBJECT, read_link
from gateway.upstream.metadata_discovery import DiscoveryError, UpstreamAuthorization
from gateway.upstream.oauth_flow import FlowError, TokenEndpointError
from gateway.upstream.services import UpstreamOAuth
from gateway.upstream.subjects import is_shared, may_connect, subject_for
from gateway.upstream.token_set import UpstreamClient
from gateway.upstream.vault import UpstreamVault
from gateway.web.authorize.sign_in_flow import (
    CONNECT_CLIENT_ID,
    Context,
    connect_client,
    held_pending,
    sign_in_starts_refused,
    stand_in_pending,
    start_sign_in,
)
from gateway.web.common import cookies
from gateway.web.common.pages import PageError, page, redirect

logger = logging.getLogger("gateway.upstream.connect")


@dataclass(frozen=True, slots=True)
class UpstreamAccount:
    """One entry of the consent page's "Accounts to connect"."""

    title: str
    upstream_host: str
    shared: bool
    route: Route
    """The route whose upstream it is (one upstream of a virtual route has a connect page of its own)."""


def accounts_to_connect(vault: UpstreamVault, route: Route, user: SignedInUser) -> list[UpstreamAccount]:
    """The consent page's hook: the route's upstream unless its credential for this user is stored (each upstream
    of a virtual route, in turn). A shared account is listed only for admins (other users approve; their calls ask
    for an admin until it is connected)."""
    if route.is_virtual:
        return [account for member in route.members() for account in accounts_to_connect(vault, member, user)]
    if not isinstance(route.server.auth, OAuthUpstreamAuth):
        return []
    shared = is_shared(route)
    if shared and user.id not in route.workspace.admins:
        return []
    subject = SHARED_SUBJECT if shared else subject_for(route, user.id)
    if vault.is_connected(route.key, subject):
        return []
    return [UpstreamAccount(route.title, urlsplit(str(route.server.upstream)).netloc, shared, route)]


# --- GET /{ws}/{server}/connect ---------------------------------------------------------------------------------


def _oauth_route(ctx: Context, workspace_name: str, server_name: str, member: str | None) -> Route:
    route = ctx.services.routes.member(workspace_name, server_name, member)
    if route is None or not isinstance(route.server.auth, OAuthUpstreamAuth):
        raise PageError(404, "Not found", "There is no upstream account to connect for this server.")
    return route


def _link_subject(ctx: Context, route: Route, pending: PendingAuthorization) -> str:
    """The subject a connect-kind pending authorization was started for: its link's, or the shared account."""
    if pending.state is None:
        if not is_shared(route):
            raise PageError(400, "Invalid link", "This connect address is incomplete. Use the link you were given.")
        return SHARED_SUBJECT
    link = read_link(pending.state, route, ctx.secret, ctx.now())
    if link is None:
        raise PageError(400, "Link expired", "This connect link has expired. Try the call again for a new link.")
    return link.subject


async def connect(ctx: Context) -> Response:
    request = ctx.request
    params = request.query_params
    route = _oauth_route(ctx, request.path_params["workspace"], request.path_params["server"], params.get("upstream"))
    pending_id = params.get("p")
    if pending_id is not None:
        return await _continue(ctx, route, pending_id, params.get("csrf") or "")

    token = params.get("for")
    if token is not None:
        link = read_link(token, route, ctx.secret, ctx.now())
        if link is None:
            raise PageError(
                400,
                "Link expired or invalid",
                "This connect link is not valid any more. Call the tool again in your application for a new link.",
            )
    elif not is_shared(route):
        raise PageError(400, "Invalid link", "This connect address is incomplete. Use the link you were given.")
    refused = sign_in_starts_refused(ctx)  # the sign-in it starts stores a pending authorization: counted first
    if refused is not None:
        return refused
    pending = stand_in_pending(ctx, route, CONNECT_CLIENT_ID, route.connect_endpoint({}), token)
    return await start_sign_in(ctx, route, pending, connect_client(route).client_name)


async def after_sign_in(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> Response:
    """A connect link's sign-in succeeded: is this the user the link is for? Then offer to continue upstream."""
    subject = _link_subject(ctx, route, pending)
    if not may_connect(route, subject, user.id):
        ctx.authorization.abandon(pending.pending_id)
        if subject == SHARED_SUBJECT:
            raise PageError(
                403,
                "Only an admin can connect this account",
                f"The shared account for {route.title} is connected by an admin of this workspace. "
                f"{user.display_name} is not one; ask an admin to open this link.",
            )
        raise PageError(
            403,
            "This link is for someone else",
            f"This connect link was made for another user than {user.display_name}. Sign in as the user who "
            "received it, or call the tool again in your own application for your own link.",
        )
    pending = ctx.authorization.signed_in(pending, user, ctx.now())
    ctx.authorization.hold(pending)
    upstream = await _discover(ctx.services.upstream_oauth, route)
    return page(
        "connect_start.html",
        page_title=f"Connect {route.title}",
        workspace_title=route.workspace.title,
        user_name=user.display_name,
        route_title=route.title,
        shared=subject == SHARED_SUBJECT,
        authorization_host=urlsplit(upstream.server.authorization_endpoint).netloc,
        continue_url=route.connect_endpoint({"p": pending.pending_id, "csrf": pending.csrf_token}),
    )


async def _continue(ctx: Context, route: Route, pending_id: str, csrf: str) -> Response:
    """Start the upstream flow for the signed-in user of a pending authorization held by this browser."""
    pending = held_pending(ctx, pending_id, route.workspace_name)
    if not hmac.compare_digest(csrf.encode(), pending.csrf_token.encode()):
        raise PageError(400, "Request refused", "The link could not be verified (CSRF check failed). Start again.")
    # A connect link's own sign-in is for this upstream; a consent page's is for the route it belongs to.
    if pending.route_key not in (route.key, route.route_key) or pending.user_id is None:
        raise PageError(400, "Sign-in expired", "This sign-in does not belong to this server. Start again.")
    if pending.client_id == CONNECT_CLIENT_ID:
        subject = _link_subject(ctx, route, pending)
    else:
        subject = SHARED_SUBJECT if is_shared(route) else subject_for(route, pending.user_id)
    if not may_connect(route, subject, pending.user_id):
        raise PageError(403, "Not allowed", f"You cannot connect the account for {route.title}.")

    services = ctx.services.upstream_oauth
    upstream = await _discover(services, route)
    client = await _client(services, route, upstream)
    started = oauth_flow.start_flow(
        upstream=upstream,
        client=client,
        redirect_uri=connect_callback_url(route),
        route_key=route.key,
        subject=subject,
        user_id=pending.user_id,
        pending_id=pending.pending_id,
        secret=ctx.secret,
        secure_cookie=cookies.is_secure(ctx.base_url),
        now=ctx.now(),
    )
    logger.info("upstream connect started for route %s at %s", route.key, upstream.server.issuer)
    response = redirect(started.authorization_url)
    response.set_cookie(
        started.cookie_name,
        started.cookie_value,
        max_age=started.max_age,
        path="/",
        secure=cookies.is_secure(ctx.base_url),
        httponly=True,
        samesite="lax",  # the authorization server's redirect back is a top-level GET navigation
    )
    return response


async def _discover(services: UpstreamOAuth, route: Route) -> UpstreamAuthorization:
    try:
        return await services.discovery.discover(route)
    except DiscoveryError as problem:
        services.discovery.forget(route.key)
        logger.warning("upstream authorization discovery for %s failed: %s", route.key, problem)
        raise PageError(
            502,
            "Cannot reach the upstream's sign-in",
            f"The gateway could not find how to sign in to the upstream service of {route.title}.",
            hint=f"Details for your administrator: {problem}",
        ) from None


async def _client(services: UpstreamOAuth, route: Route, upstream: UpstreamAuthorization) -> UpstreamClient:
    from gateway.secrets import SecretUnavailableError

    try:
        return await services.registrar.client_for(route, upstream.server)
    except (RegistrationError, SecretUnavailableError) as problem:
        logger.warning("gateway client at the upstream of %s unavailable: %s", route.key, problem)
        raise PageError(
            502,
            "Cannot register with the upstream",
            f"The gateway could not identify itself to the upstream service of {route.title}.",
            hint=f"Details for your administrator: {problem}",
        ) from None


# --- GET /{ws}/{server}/connect/callback -----------------------------------------------------------------------


async def connect_callback(ctx: Context) -> Response:
    request = ctx.request
    params = request.query_params
    secure = cookies.is_secure(ctx.base_url)
    try:
        flow = oauth_flow.read_flow(
            params.get("state") or "", dict(request.cookies), secret=ctx.secret, secure_cookie=secure, now=ctx.now()
        )
    except FlowError as problem:
        raise PageError(
            400, "Connection not recognised", f"The upstream sign-in could not be completed: {problem}."
        ) from None
    route = _oauth_route(ctx, request.path_params["workspace"], request.path_params["server"], params.get("upstream"))
    if flow.route_key != route.key:
        # RFC 9700 §4.4.2.2: the answer came back to the redirect URI of another upstream's authorization server
        # than the one this flow was sent to — a mix-up. Its code is never sent to this flow's token endpoint.
        logger.warning("upstream answer for %s arrived at the callback of %s: refused", flow.route_key, route.key)
        raise PageError(
            400,
            "Connection refused",
            "The upstream sign-in answered at the address of another upstream service; nothing was connected. "
            "Start again from the Connect link.",
        )

    if "error" in params:  # RFC 6749 §4.1.2.1: e.g. the user cancelled at the upstream
        error = params["error"][:100]
        reason = "denied" if error == "access_denied" else "refused"
        _record_failure(ctx, route, flow, error)
        return _done(ctx, flow, _failed_page(route, reason, f"the upstream answered error={error}"), reason)
    code = params.get("code")
    if not code:
        raise PageError(400, "Invalid request", "The upstream's answer has no authorization code.")

    services = ctx.services.upstream_oauth
    upstream = await _discover(services, route)
    try:
        oauth_flow.check_issuer(upstream, flow, params.get("iss"))
    except FlowError as problem:
        raise PageError(400, "Connection refused", f"The upstream sign-in could not be completed: {problem}.") from None
    client = await _client(services, route, upstream)
    if client.client_id != flow.client_id:
        raise PageError(400, "Connection expired", "The gateway's registration changed meanwhile. Start again.")
    try:
        tokens = await oauth_flow.exchange_code(
            services.fetcher,
            upstream=upstream,
            client=client,
            code=code,
            flow=flow,
            redirect_uri=connect_callback_url(route),
            secret=ctx.secret,
        )
    except TokenEndpointError as problem:
        logger.warning("upstream code exchange for %s failed: %s", route.key, problem.error or "unreachable")
        # Refused both ways of presenting the secret (oauth_flow retries once): the server no longer knows the
        # registration. Forget it, so the next Connect registers anew instead of failing the same way forever.
        if problem.error == "invalid_client" and client.source == "dcr":
            services.registrar.forget(route)
        reason = "exchange" if problem.error else "unreachable"
        _record_failure(ctx, route, flow, problem.error or "unreachable")
        return _done(ctx, flow, _failed_page(route, reason, problem), reason)
    services.vault.save(route.key, flow.subject, tokens)
    ctx.services.audit.record(
        "upstream.connected", workspace=route.workspace_name, route_key=route.key, user_id=flow.user_id,
        subject=flow.subject,
    )  # fmt: skip
    logger.info("upstream account connected for route %s (%s)", route.key, "shared" if is_shared(route) else "user")
    return _done(ctx, flow, None)


# Why a connection failed, in words a user can act on (shown on the consent page or the failure page). Fixed text:
# nothing the upstream sent reaches the page; the details are in the log and the audit trail.
CONNECT_FAILURES = {
    "denied": "Access was not allowed at {host}, so {title} is not connected. Connect again and allow access there.",
    "refused": (
        "{host} answered with an error, so {title} is not connected. Connect again; if it keeps failing, ask an "
        "administrator of this gateway (its audit trail has the details)."
    ),
    "exchange": (
        "{host} did not give the gateway a credential, so {title} is not connected. Connect again; if it keeps "
        "failing, ask an administrator of this gateway (its audit trail has the details)."
    ),
    "unreachable": "{host} could not be reached, so {title} is not connected. Try Connect again in a moment.",
}


def connect_failure(route: Route, reason: str | None) -> str | None:
    """The consent page's words for a failed connection of ``route``'s upstream (None for an unknown reason)."""
    words = CONNECT_FAILURES.get(reason or "")
    host = urlsplit(str(route.server.upstream)).netloc
    return None if words is None else words.format(host=host, title=route.title)


def _record_failure(ctx: Context, route: Route, flow: oauth_flow.Flow, error: str) -> None:
    ctx.services.audit.record(
        "upstream.failed", workspace=route.workspace_name, route_key=route.key, user_id=flow.user_id,
        subject=flow.subject, error=error, stage="connect",
    )  # fmt: skip


def _failed_page(route: Route, reason: str, problem: Exception | str) -> PageError:
    message = connect_failure(route, reason) or "The upstream service did not connect the account."
    status = 502 if isinstance(problem, Exception) else 400
    return PageError(
        status, "The account was not connected", message, hint=f"Details for your administrator: {problem}"
    )


def _done(ctx: Context, flow: oauth_flow.Flow, failure: PageError | None, reason: str | None = None) -> Response:
    """Back to the consent page the flow started from (which says why, after a failure), or the "Connected" page;
    the flow cookie is cleared."""
    pending = ctx.authorization.held(flow.pending_id, ctx.now()) if flow.pending_id else None
    route = ctx.services.routes.by_key(flow.route_key)
    assert route is not None
    if failure is not None and (pending is None or pending.client_id == CONNECT_CLIENT_ID):
        raise failure
    if pending is not None and pending.client_id != CONNECT_CLIENT_ID:
        # The consent page shows the account connected (or, after a failure, still offers Connect).
        query = {"p": pending.pending_id}
        if failure is not None and reason is not None:
            query.update(failed=route.key, why=reason)  # the consent page words it (connect_failure)
        response = redirect(f"{route.endpoint('consent')}?{urlencode(query)}")
    else:
        if pending is not None:
            ctx.authorization.abandon(pending.pending_id)
        response = page(
            "connected.html",
            page_title="Connected",
            workspace_title=route.workspace.title,
            route_title=route.title,
            shared=flow.subject == SHARED_SUBJECT,
        )
        if pending is not None:
            cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    response.delete_cookie(
        oauth_flow.flow_cookie_name(flow.state, cookies.is_secure(ctx.base_url)),
        path="/",
        secure=cookies.is_secure(ctx.base_url),
        httponly=True,
        samesite="lax",
    )
    return response

"""The workspace's sign-in pages (authorize function): the built-in dev login (``/{ws}/login``) and the OpenID
Connect callback (``GET /{ws}/oidc/callback``, one per workspace, shared by its routes).

Either yields the signed-in user, and the flow of the pending authorization's kind continues: an MCP client's
authorization goes on to consent (:mod:`gateway.web.authorize.consent`), an upstream connect link to the upstream's
sign-in (:mod:`gateway.web.authorize.upstream_connect`), My connections to its page. Every successful sign-in also
starts the workspace's session in this browser (:mod:`gateway.web.common.session`), so My connections needs no second
sign-in.
"""

from __future__ import annotations

import hmac
import logging

from starlette.responses import Response

from gateway.config import DevLoginProvider, OidcProvider
from gateway.identity import dev_login
from gateway.identity.user import SignedInUser
from gateway.principals import person_id_problem
from gateway.rate_limits import RateLimit
from gateway.routes import Route
from gateway.storage.records import PendingAuthorization
from gateway.web.authorize import consent
from gateway.web.authorize.sign_in_flow import (
    ADMIN_CONSOLE_CLIENT_ID,
    CONNECT_CLIENT_ID,
    EXPIRED,
    MY_CONNECTIONS_CLIENT_ID,
    Context,
    check_csrf,
    client_of,
    error_url,
    held_pending,
    idp_unavailable,
    relying_party,
    return_to_page,
    route_of,
    workspace_of,
)
from gateway.web.common import cookies, session
from gateway.web.common.pages import PageError, page
from gateway.web.common.rate_limiting import client_address, first_refusal, too_many_requests
from gateway.web.common.responses import NO_STORE

logger = logging.getLogger("gateway.authorize")


async def after_sign_in(ctx: Context, pending: PendingAuthorization, user: SignedInUser) -> Response:
    route = route_of(ctx, pending)
    problem = person_id_problem(user.id)
    if problem is not None:  # gateway.principals: a person never acts as a service identity
        ctx.authorization.abandon(pending.pending_id)
        logger.warning("sign-in refused in workspace %s: %s", route.workspace_name, problem)
        raise PageError(
            403,
            "This account cannot sign in here",
            "The identity provider names this account in a form the gateway reserves for services.",
            hint=f"Details for your administrator: {problem}.",
        )
    ctx.services.audit.record(
        "user.signed_in", workspace=route.workspace_name, route_key=route.route_key, user_id=user.id,
        client_id=pending.client_id,
    )  # fmt: skip
    response = await _continue_flow(ctx, route, pending, user)
    session.start(response, user, route.workspace_name, base_url=ctx.base_url, secret=ctx.secret, now=ctx.now())
    return response


async def _continue_flow(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> Response:
    if pending.client_id in (MY_CONNECTIONS_CLIENT_ID, ADMIN_CONSOLE_CLIENT_ID):
        return return_to_page(ctx, pending)  # a page of the gateway's own asked for the sign-in
    if pending.client_id == CONNECT_CLIENT_ID:
        from gateway.web.authorize import upstream_connect  # upstream OAuth: loaded by the flows that use it

        return await upstream_connect.after_sign_in(ctx, route, pending, user)
    return await consent.after_sign_in(ctx, route, pending, user)


def own_page_purpose(pending: PendingAuthorization, route: Route) -> str | None:
    """What a sign-in for one of the gateway's own pages is for (None: an MCP client's authorization, which the
    sign-in page presents as the application asking to use the route)."""
    if pending.client_id == MY_CONNECTIONS_CLIENT_ID:
        return "to see the applications and accounts connected to you in this workspace"
    if pending.client_id == ADMIN_CONSOLE_CLIENT_ID:
        return "to administer this workspace in its console (administrators only)"
    if pending.client_id == CONNECT_CLIENT_ID:
        return f"to connect your account for {route.title}"
    return None


def sign_in_refused(ctx: Context) -> Response | None:
    """429 once the client's address has reached the sign-in limit (the IdP callback, dev-login passwords)."""
    limit = RateLimit("sign-in-ip", ctx.services.settings.rate_limit_sign_in_per_ip)
    refused = first_refusal(ctx.services, [(limit, client_address(ctx.request))])
    return None if refused is None else too_many_requests(refused, NO_STORE)


async def login(ctx: Context) -> Response:
    """The built-in dev login of a workspace (GET shows the form, POST checks the password)."""
    request = ctx.request
    if request.method == "POST":
        refused = sign_in_refused(ctx)
        if refused is not None:
            return refused
    workspace_name = request.path_params["workspace"]
    workspace = workspace_of(ctx, workspace_name)
    provider = workspace.identity_provider
    if not isinstance(provider, DevLoginProvider):
        raise PageError(404, "Not found", "This workspace signs users in at its identity provider, not here.")
    if not dev_login.is_allowed(provider, ctx.services.settings):
        raise PageError(403, "Sign-in is not configured", dev_login.refusal_reason(ctx.services.settings))
    form = await request.form() if request.method == "POST" else None
    pending_id = form.get("p") if form is not None else request.query_params.get("p")
    pending = held_pending(ctx, pending_id if isinstance(pending_id, str) else None, workspace_name)
    route = route_of(ctx, pending)
    client = await client_of(ctx, route, pending.client_id)

    error = None
    username = ""
    if form is not None:
        check_csrf(pending, form)
        username = str(form.get("username") or "")[:128]
        user = dev_login.authenticate(provider, username, str(form.get("password") or ""))
        if user is not None:
            return await after_sign_in(ctx, pending, user)
        error = "Wrong username or password."
    return page(
        "login.html",
        401 if error else 200,
        redirect_uri=pending.redirect_uri,
        page_title="Sign in",
        workspace_title=workspace.title,
        purpose=own_page_purpose(pending, route),
        client_name=client.client_name,
        route_title=route.title,
        action=f"{ctx.base_url}/{workspace_name}/login",
        pending_id=pending.pending_id,
        csrf=pending.csrf_token,
        username=username,
        error=error,
    )


async def oidc_callback(ctx: Context) -> Response:
    """The workspace's one redirect URI at its OpenID Provider (OIDC Core §3.1.2.5 / §3.1.2.6)."""
    from gateway.identity.oidc import LoginSecrets, OidcError, UnverifiedIdentity

    request = ctx.request
    refused = sign_in_refused(ctx)
    if refused is not None:
        return refused
    workspace_name = request.path_params["workspace"]
    workspace = workspace_of(ctx, workspace_name)
    provider = workspace.identity_provider
    if not isinstance(provider, OidcProvider):
        raise PageError(404, "Not found", "This workspace does not sign in through an OpenID Connect provider.")
    state = request.query_params.get("state") or ""
    pending_id = cookies.unsign("oidc-state", state, ctx.secret)
    if pending_id is None:
        raise PageError(
            400, "Sign-in not recognised", "The identity provider's answer does not belong to this gateway."
        )
    pending = held_pending(ctx, pending_id, workspace_name)
    if pending.idp_state is None or not hmac.compare_digest(pending.idp_state.encode(), state.encode()):
        raise PageError(400, "Sign-in expired", EXPIRED)
    route = route_of(ctx, pending)

    if "error" in request.query_params:  # OIDC Core §3.1.2.6: e.g. the user cancelled at the provider
        idp_error = request.query_params["error"][:100]
        client = await client_of(ctx, route, pending.client_id)
        return consent.deny(
            ctx,
            route,
            pending,
            client.client_name,
            heading="Sign-in was not completed",
            message=f"The identity provider answered: {idp_error}.",
            detail=request.query_params.get("error_description", "")[:300] or None,
            client_reason=f"sign-in at the identity provider failed: {idp_error}",
        )
    code = request.query_params.get("code")
    if not code or pending.idp_nonce is None or pending.idp_code_verifier is None:
        raise PageError(400, "Invalid request", "The identity provider's answer has no authorization code.")
    secrets = LoginSecrets(nonce=pending.idp_nonce, code_verifier=pending.idp_code_verifier)
    try:
        user = await relying_party(ctx, workspace_name, provider).sign_in(code=code, secrets=secrets)
    except UnverifiedIdentity as problem:
        logger.warning("sign-in at the identity provider of workspace %s refused: %s", workspace_name, problem)
        ctx.authorization.abandon(pending.pending_id)
        raise PageError(
            403,
            "This account cannot sign in here",
            "The identity provider signed you in, but did not confirm the email address that identifies you here.",
            hint=f"Details for your administrator: {problem}.",
        ) from None
    except OidcError as problem:
        logger.warning("sign-in at the identity provider of workspace %s failed: %s", workspace_name, problem)
        ctx.authorization.abandon(pending.pending_id)
        error = idp_unavailable(str(problem))
        error.return_url = error_url(route, pending, "access_denied", "sign-in at the identity provider failed")
        error.client_name = (await client_of(ctx, route, pending.client_id)).client_name
        raise error from None
    return await after_sign_in(ctx, pending, user)

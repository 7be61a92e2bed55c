"""ASGI app of the authorize function: /authorize, sign-in at the workspace's identity provider, consent.

The flow (all state in the pending authorization, stored with a TTL; the handlers are stateless):

1. ``GET /{ws}/{server}/authorize`` validates the request (:mod:`gateway.oauth.authorize_request`), stores a
   :class:`PendingAuthorization`, sets a signed cookie bound to it, and sends the browser to the workspace's sign-in:
   the dev login form (``/{ws}/login?p=<pending>``) or the OpenID Provider (``state`` = the signed pending id).
2. ``/{ws}/login`` (POST) or ``GET /{ws}/oidc/callback`` (one callback per workspace, shared by its routes) yields
   the user. The route's access policy decides; a user who is not allowed sees a denial page and the client gets
   ``access_denied`` (no code is issued).
3. A remembered consent of (user, client, route) whose grant is still usable issues the code at once; otherwise the
   consent page (``/{ws}/{server}/consent?p=<pending>``) asks, and its POST (CSRF token checked) approves or denies.
4. The code (random, stored as its SHA-256 with the grant id the token endpoint will create) goes back to the client
   with ``state`` and ``iss`` (RFC 9207); the pending authorization is deleted once a code or an error is issued.

Every page is HTML with a strict CSP, ``X-Frame-Options: DENY`` (clickjacking, RFC 6749 §10.13), no referrer and
no caching. Redirects after a form POST use 303, and the CSP's ``form-action`` names the client's redirect origin:
browsers (Chromium) apply ``form-action`` to the redirects that follow a form submission.
"""

from __future__ import annotations

import dataclasses
import hmac
import importlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode, urlsplit

import jinja2
import markupsafe
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route as Path_

from gateway.config import DevLoginProvider, OidcProvider, Workspace
from gateway.identity import dev_login
from gateway.identity.user import SignedInUser
from gateway.oauth.authorize_request import (
    AuthorizingClient,
    ClientLookup,
    RedirectableError,
    UnsafeToRedirect,
    error_redirect,
    parse_authorize_request,
    redirect_with,
)
from gateway.oauth.errors import ErrorCode, OAuthError
from gateway.oauth.hashing import hash_secret, random_token
from gateway.oauth.redirect_uris import is_loopback_redirect
from gateway.routes import Route, workspace_callback_url
from gateway.runtime import Runtime, get_runtime
from gateway.storage.ports import StorageError
from gateway.storage.records import AuthorizationCode, ClientSource, PendingAuthorization
from gateway.web import cookies
from gateway.web.default_route import DefaultRouteAliases

if TYPE_CHECKING:
    from gateway.identity.oidc import RelyingParty
    from gateway.secrets import SecretResolver

logger = logging.getLogger("gateway.authorize")

TEMPLATES = Path(__file__).parent / "templates"
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, auto_reload=False, undefined=jinja2.StrictUndefined
)
_INLINE_CODE = re.compile(r"`([^`]+)`")


def _inline_code(text: str) -> markupsafe.Markup:
    """Escape ``text`` and show its `backticked` spans as code (route descriptions are written in Markdown)."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(_INLINE_CODE.sub(r"<code>\1</code>", escaped))  # noqa: S704 - escaped above


_templates.filters["inline_code"] = _inline_code

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

clock: Callable[[], float] = time.time  # tests move time

# The client id of a pending authorization that is an upstream connect (a reconnect link's sign-in), not an MCP
# client's /authorize: no code is ever issued for it (gateway.web.upstream_connect).
CONNECT_CLIENT_ID = "urn:mcp-gateway:upstream-connect"


def _now() -> int:
    return int(clock())


# --- collaborators (module attributes so tests can substitute them) -------------------------------------------


def _default_client_lookup() -> ClientLookup:
    module = importlib.import_module("gateway.oauth.clients")
    return cast(ClientLookup, module.client_resolver())


client_lookup: Callable[[], ClientLookup] = _default_client_lookup

_secrets: tuple[Runtime, SecretResolver] | None = None
_secrets_lock = threading.Lock()


def _secret_resolver(runtime: Runtime) -> SecretResolver:
    global _secrets
    from gateway.secrets import SecretResolver

    with _secrets_lock:
        if _secrets is None or _secrets[0] is not runtime:
            resolver = SecretResolver(
                deployed=runtime.settings.is_deployed, secretsmanager_client=lambda: runtime.secretsmanager
            )
            _secrets = (runtime, resolver)
        return _secrets[1]


def relying_party(runtime: Runtime, workspace_name: str, provider: OidcProvider) -> RelyingParty:
    from gateway.identity.oidc import RelyingParty
    from gateway.secrets import SecretUnavailableError

    secret = None
    if provider.client_secret is not None:
        try:
            secret = _secret_resolver(runtime).resolve(provider.client_secret)
        except SecretUnavailableError as problem:
            logger.error("identity provider client secret of workspace %s unavailable: %s", workspace_name, problem)
            raise PageError(
                503,
                "Sign-in is unavailable",
                "The gateway cannot read its identity-provider credentials right now. Try again shortly.",
            ) from None
    return RelyingParty(provider, workspace_callback_url(runtime.base_url, workspace_name), secret)


# --- pages ----------------------------------------------------------------------------------------------------


class PageError(Exception):
    """Shown as the error page. ``return_url`` (the client's redirect with an error) is offered when known."""

    def __init__(
        self,
        status_code: int,
        heading: str,
        message: str,
        *,
        hint: str | None = None,
        return_url: str | None = None,
        client_name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.heading = heading
        self.message = message
        self.hint = hint
        self.return_url = return_url
        self.client_name = client_name


_CSP_SOURCE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(//[A-Za-z0-9.\-\[\]:]+)?$")


def form_action_source(redirect_uri: str) -> str | None:
    """The CSP source expression that allows a redirect to ``redirect_uri`` after a form POST."""
    parts = urlsplit(redirect_uri)
    scheme = parts.scheme.lower()
    source = f"{scheme}://{parts.netloc}" if scheme in ("http", "https") else f"{scheme}:"
    return source if _CSP_SOURCE.match(source) else None  # never let a value break out of the header


def security_headers(redirect_uri: str | None = None) -> dict[str, str]:
    form_action = "'self'"
    source = form_action_source(redirect_uri) if redirect_uri else None
    if source:
        form_action += f" {source}"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; "
            f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }


def page(template: str, status_code: int = 200, *, redirect_uri: str | None = None, **context: Any) -> HTMLResponse:
    context.setdefault("workspace_title", None)
    context.setdefault("user_name", None)
    context.setdefault("page_title", "")
    body = _templates.get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code, headers=security_headers(redirect_uri))


def redirect(url: str, *, redirect_uri: str | None = None) -> Response:
    """303 See Other: a POST becomes a GET at the target (RFC 9110 §15.4.4)."""
    headers = security_headers(redirect_uri)
    headers.pop("Content-Security-Policy")
    return RedirectResponse(url, status_code=303, headers=headers)


# --- shared steps ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Context:
    runtime: Runtime
    request: Request

    @property
    def base_url(self) -> str:
        return self.runtime.base_url

    @property
    def secret(self) -> bytes:
        return self.runtime.shared_secret


def _context(request: Request) -> Context:
    runtime = get_runtime()
    runtime.observe_event(request.scope.get("aws.event"))
    return Context(runtime, request)


def _workspace(ctx: Context, name: str) -> Workspace:
    workspace = ctx.runtime.routes.workspace(name)
    if workspace is None:
        raise PageError(404, "Not found", f"There is no workspace {name!r} on this gateway.")
    return workspace


def _route_of(ctx: Context, pending: PendingAuthorization) -> Route:
    workspace_name, _, server_name = pending.route_key.partition("/")
    route = ctx.runtime.routes.get(workspace_name, server_name)
    if route is None:
        raise PageError(404, "Not found", "The MCP server of this request is no longer configured.")
    return route


_EXPIRED = (
    "This sign-in request has expired or was already used. Start again from your application "
    "(reconnect the MCP server)."
)


def _pending(ctx: Context, pending_id: str | None, workspace_name: str) -> PendingAuthorization:
    """The pending authorization named in the URL or form, provided this browser started it (cookie)."""
    if not pending_id or len(pending_id) > 200:
        raise PageError(400, "Invalid request", "The request does not name a sign-in in progress.")
    pending = ctx.runtime.grants.get_pending(pending_id, _now())
    if pending is None or pending.route_key.partition("/")[0] != workspace_name:
        raise PageError(400, "Sign-in expired", _EXPIRED)
    if not cookies.holds_pending(ctx.request.cookies, pending_id, ctx.base_url, ctx.secret):
        # RFC 6749 §10.12: the flow must continue in the browser that started it.
        raise PageError(
            400,
            "Sign-in not recognised",
            "This sign-in was started in another browser, or your browser blocked the gateway's cookie. "
            "Start again from your application in this browser.",
        )
    return pending


def _check_csrf(pending: PendingAuthorization, form: FormData) -> None:
    presented = form.get("csrf")
    if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), pending.csrf_token.encode()):
        raise PageError(400, "Request refused", "The form could not be verified (CSRF check failed). Start again.")


async def _client(ctx: Context, route: Route, client_id: str) -> AuthorizingClient:
    if client_id == CONNECT_CLIENT_ID:  # a sign-in started by an upstream connect link, not by an MCP client
        from gateway.web.upstream_connect import connect_client

        return connect_client(route)
    try:
        return await client_lookup().resolve(route, client_id, _now())
    except OAuthError as error:
        raise PageError(
            400, "Unknown application", f"The application is no longer known: {error.description}"
        ) from None


def _error_url(route: Route, pending: PendingAuthorization, error: ErrorCode, description: str) -> str:
    return error_redirect(route, RedirectableError(OAuthError(error, description), pending.redirect_uri, pending.state))


def _finish(ctx: Context, pending: PendingAuthorization, response: Response) -> Response:
    """The pending authorization has produced its answer: forget it and its cookie."""
    ctx.runtime.grants.delete_pending(pending.pending_id)
    cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    return response


def _issue_code(ctx: Context, route: Route, pending: PendingAuthorization) -> Response:
    """RFC 6749 §4.1.2: the code goes to the redirect URI with ``state`` and, per RFC 9207 §2, ``iss``."""
    assert pending.user_id is not None
    now = _now()
    code = random_token(32)
    ctx.runtime.grants.put_code(
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
            expires_at=now + ctx.runtime.config.oauth.authorization_code_ttl_seconds,
        )
    )
    logger.info("authorization code issued for route %s, client %s", route.key, pending.client_id[:100])
    url = redirect_with(pending.redirect_uri, {"code": code, "state": pending.state, "iss": route.issuer})
    return _finish(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))


def _deny(
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
    return_url = _error_url(route, pending, "access_denied", client_reason)
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
    return _finish(ctx, pending, response)


def upstream_accounts_to_connect(route: Route, user: SignedInUser) -> list[Any]:
    """Upstream accounts the user must connect before approving: the route's upstream when it uses per-user OAuth
    and this user has not connected it (or, for an admin, the shared account nobody has connected yet)."""
    if route.server.auth.type != "oauth":
        return []
    from gateway.web.upstream_connect import accounts_to_connect

    return accounts_to_connect(get_runtime(), route, user)


def _remembered(ctx: Context, route: Route, pending: PendingAuthorization, user: SignedInUser) -> bool:
    """A standing approval of (user, client, route) whose grant is still usable and covers the scopes asked."""
    grants = ctx.runtime.grants
    consent = grants.get_consent(route.key, pending.client_id, user.id)
    if consent is None or not set(pending.scopes) <= set(consent.scopes):
        return False
    grant = grants.get_grant(consent.grant_id)
    return grant is not None and grant.is_usable(_now()) and not upstream_accounts_to_connect(route, user)


async def _after_sign_in(ctx: Context, pending: PendingAuthorization, user: SignedInUser) -> Response:
    route = _route_of(ctx, pending)
    if pending.client_id == CONNECT_CLIENT_ID:
        from gateway.web.upstream_connect import after_sign_in

        return await after_sign_in(ctx, route, pending, user)
    if not route.server.access.allows(user.id, user.groups):
        client = await _client(ctx, route, pending.client_id)
        pending = dataclasses.replace(pending, user_id=user.id, user_name=user.name)
        return _deny(
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
        return _issue_code(ctx, route, pending)
    ctx.runtime.grants.put_pending(pending)
    url = f"{route.endpoint('consent')}?{urlencode({'p': pending.pending_id})}"
    return redirect(url, redirect_uri=pending.redirect_uri)


# --- endpoints ------------------------------------------------------------------------------------------------


async def authorize(request: Request) -> Response:
    ctx = _context(request)
    workspace_name, server_name = request.path_params["workspace"], request.path_params["server"]
    route = ctx.runtime.routes.get(workspace_name, server_name)
    if route is None:
        raise PageError(404, "Not found", f"There is no MCP server {server_name!r} in workspace {workspace_name!r}.")
    now = _now()
    try:
        parsed = await parse_authorize_request(request.query_params.multi_items(), route, client_lookup(), now)
    except UnsafeToRedirect as problem:
        raise PageError(problem.status_code, problem.title, problem.description) from None
    except RedirectableError as problem:
        return redirect(error_redirect(route, problem))

    policy = ctx.runtime.config.oauth
    pending = PendingAuthorization(
        pending_id=random_token(32),
        route_key=route.key,
        client_id=parsed.client.client_id,
        client_source=parsed.client.source,
        redirect_uri=parsed.redirect_uri,
        state=parsed.state,
        code_challenge=parsed.code_challenge,
        scopes=parsed.scopes,
        resource=parsed.resource,
        created_at=now,
        expires_at=now + policy.pending_authorization_ttl_seconds,
        csrf_token=random_token(32),
    )
    return await start_sign_in(ctx, route, pending, parsed.client.client_name)


async def start_sign_in(ctx: Context, route: Route, pending: PendingAuthorization, client_name: str) -> Response:
    """Store ``pending``, bind it to this browser (cookie) and send the browser to the workspace's sign-in."""
    policy = ctx.runtime.config.oauth
    workspace_name = route.workspace_name
    provider = route.workspace.identity_provider
    if isinstance(provider, DevLoginProvider):
        if not dev_login.is_allowed(provider, ctx.runtime.settings):
            raise PageError(
                403,
                "Sign-in is not configured",
                dev_login.refusal_reason(ctx.runtime.settings),
                return_url=_error_url(route, pending, "server_error", "the workspace's sign-in is not configured"),
                client_name=client_name,
            )
        target = f"{ctx.base_url}/{workspace_name}/login?{urlencode({'p': pending.pending_id})}"
    else:
        from gateway.identity.oidc import LoginSecrets, OidcError

        secrets = LoginSecrets.new()
        state = cookies.sign("oidc-state", pending.pending_id, ctx.secret)
        pending = dataclasses.replace(
            pending, idp_state=state, idp_nonce=secrets.nonce, idp_code_verifier=secrets.code_verifier
        )
        try:
            target = await relying_party(ctx.runtime, workspace_name, provider).authorization_url(
                state=state, secrets=secrets
            )
        except OidcError as problem:
            raise _idp_unavailable(str(problem)) from None
    ctx.runtime.grants.put_pending(pending)
    response = redirect(target)
    cookies.set_pending_cookie(
        response, pending.pending_id, ctx.base_url, ctx.secret, policy.pending_authorization_ttl_seconds
    )
    return response


def _idp_unavailable(reason: str) -> PageError:
    return PageError(
        502,
        "Sign-in failed",
        "The workspace's identity provider could not complete the sign-in.",
        hint=f"Details for your administrator: {reason}",
    )


async def login(request: Request) -> Response:
    """The built-in dev login of a workspace (GET shows the form, POST checks the password)."""
    ctx = _context(request)
    workspace_name = request.path_params["workspace"]
    workspace = _workspace(ctx, workspace_name)
    provider = workspace.identity_provider
    if not isinstance(provider, DevLoginProvider):
        raise PageError(404, "Not found", "This workspace signs users in at its identity provider, not here.")
    if not dev_login.is_allowed(provider, ctx.runtime.settings):
        raise PageError(403, "Sign-in is not configured", dev_login.refusal_reason(ctx.runtime.settings))
    form = await request.form() if request.method == "POST" else None
    pending_id = form.get("p") if form is not None else request.query_params.get("p")
    pending = _pending(ctx, pending_id if isinstance(pending_id, str) else None, workspace_name)
    route = _route_of(ctx, pending)
    client = await _client(ctx, route, pending.client_id)

    error = None
    username = ""
    if form is not None:
        _check_csrf(pending, form)
        username = str(form.get("username") or "")[:128]
        user = dev_login.authenticate(provider, username, str(form.get("password") or ""))
        if user is not None:
            return await _after_sign_in(ctx, pending, user)
        error = "Wrong username or password."
    return page(
        "login.html",
        401 if error else 200,
        redirect_uri=pending.redirect_uri,
        page_title="Sign in",
        workspace_title=workspace.title,
        client_name=client.client_name,
        route_title=route.title,
        action=f"{ctx.base_url}/{workspace_name}/login",
        pending_id=pending.pending_id,
        csrf=pending.csrf_token,
        username=username,
        error=error,
    )


async def oidc_callback(request: Request) -> Response:
    """The workspace's one redirect URI at its OpenID Provider (OIDC Core §3.1.2.5 / §3.1.2.6)."""
    from gateway.identity.oidc import LoginSecrets, OidcError

    ctx = _context(request)
    workspace_name = request.path_params["workspace"]
    workspace = _workspace(ctx, workspace_name)
    provider = workspace.identity_provider
    if not isinstance(provider, OidcProvider):
        raise PageError(404, "Not found", "This workspace does not sign in through an OpenID Connect provider.")
    state = request.query_params.get("state") or ""
    pending_id = cookies.unsign("oidc-state", state, ctx.secret)
    if pending_id is None:
        raise PageError(
            400, "Sign-in not recognised", "The identity provider's answer does not belong to this gateway."
        )
    pending = _pending(ctx, pending_id, workspace_name)
    if pending.idp_state is None or not hmac.compare_digest(pending.idp_state.encode(), state.encode()):
        raise PageError(400, "Sign-in expired", _EXPIRED)
    route = _route_of(ctx, pending)

    if "error" in request.query_params:  # OIDC Core §3.1.2.6: e.g. the user cancelled at the provider
        idp_error = request.query_params["error"][:100]
        client = await _client(ctx, route, pending.client_id)
        return _deny(
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
        user = await relying_party(ctx.runtime, workspace_name, provider).sign_in(code=code, secrets=secrets)
    except OidcError as problem:
        logger.warning("sign-in at the identity provider of workspace %s failed: %s", workspace_name, problem)
        ctx.runtime.grants.delete_pending(pending.pending_id)
        error = _idp_unavailable(str(problem))
        error.return_url = _error_url(route, pending, "access_denied", "sign-in at the identity provider failed")
        error.client_name = (await _client(ctx, route, pending.client_id)).client_name
        raise error from None
    return await _after_sign_in(ctx, pending, user)


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
    upstream = urlsplit(str(route.server.upstream))
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
            "upstream_host": upstream.netloc,
        },
        "scopes": [
            {"name": name, "description": SCOPE_DESCRIPTIONS.get(name, f"Permission {name!r} on this server.")}
            for name in pending.scopes
        ],
    }


async def consent(request: Request) -> Response:
    ctx = _context(request)
    workspace_name, server_name = request.path_params["workspace"], request.path_params["server"]
    if request.method not in ("GET", "POST"):
        raise HTTPException(405)
    form = await request.form() if request.method == "POST" else None
    pending_id = form.get("p") if form is not None else request.query_params.get("p")
    pending = _pending(ctx, pending_id if isinstance(pending_id, str) else None, workspace_name)
    route = _route_of(ctx, pending)
    if route.server_name != server_name or pending.user_id is None:
        raise PageError(400, "Sign-in expired", _EXPIRED)
    client = await _client(ctx, route, pending.client_id)
    user = SignedInUser(pending.user_id, pending.user_name, pending.user_groups)
    accounts = upstream_accounts_to_connect(route, user)

    if form is not None:
        _check_csrf(pending, form)
        decision = form.get("decision")
        if decision == "deny":
            url = _error_url(route, pending, "access_denied", "the user denied the request")
            return _finish(ctx, pending, redirect(url, redirect_uri=pending.redirect_uri))
        if decision != "approve":
            raise PageError(400, "Invalid request", "Choose Approve or Deny.")
        if accounts:
            raise PageError(400, "Accounts to connect", "Connect the listed accounts before approving.")
        return _issue_code(ctx, route, pending)

    return page(
        "consent.html",
        redirect_uri=pending.redirect_uri,
        page_title=f"Allow {client.client_name}?",
        workspace_title=route.workspace.title,
        user_name=user.display_name,
        action=route.endpoint("consent"),
        pending_id=pending.pending_id,
        csrf=pending.csrf_token,
        upstream_accounts=accounts,
        connect_url=f"{route.endpoint('connect')}?{urlencode({'p': pending.pending_id, 'csrf': pending.csrf_token})}",
        can_approve=not accounts,
        **_consent_view(route, pending, client),
    )


# --- errors ---------------------------------------------------------------------------------------------------


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return page(
        "error.html",
        exc.status_code,
        page_title=exc.heading,
        heading=exc.heading,
        message=exc.message,
        hint=exc.hint,
        return_url=exc.return_url,
        client_name=exc.client_name or "the application",
    )


async def _storage_error(request: Request, exc: Exception) -> Response:
    logger.error("storage failure on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return await _page_error(
        request, PageError(503, "Try again shortly", "The gateway cannot save or read this sign-in right now.")
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = PageError(405, "Method not allowed", f"{request.method} is not allowed here.")
    elif exc.status_code == 404:
        error = PageError(404, "Not found", f"There is nothing at {request.url.path}.")
    else:
        error = PageError(exc.status_code, "Request refused", str(exc.detail))
    return await _page_error(request, error)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Type and traceback only: the request may hold codes, cookies or passwords.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return await _page_error(
        request, PageError(500, "Something went wrong", "The gateway hit an unexpected error; it has been logged.")
    )


def exception_handlers() -> Mapping[Any, Any]:
    return {PageError: _page_error, StorageError: _storage_error, HTTPException: _http_error, Exception: _unexpected}


async def _upstream_connect(request: Request) -> Response:
    from gateway.web.upstream_connect import connect

    return await connect(request)


async def _upstream_connect_callback(request: Request) -> Response:
    from gateway.web.upstream_connect import connect_callback

    return await connect_callback(request)


def create_app() -> Starlette:
    routes: Sequence[Path_] = [
        Path_("/{workspace}/{server}/authorize", authorize, methods=["GET"]),
        Path_("/{workspace}/{server}/consent", consent, methods=["GET", "POST"]),
        Path_("/{workspace}/login", login, methods=["GET", "POST"]),
        Path_("/{workspace}/oidc/callback", oidc_callback, methods=["GET"]),
        Path_("/{workspace}/{server}/connect", _upstream_connect, methods=["GET"]),
        Path_("/{workspace}/connect/callback", _upstream_connect_callback, methods=["GET"]),
    ]
    return Starlette(
        routes=list(routes),
        middleware=[Middleware(DefaultRouteAliases, names=frozenset({"authorize"}))],
        exception_handlers=dict(exception_handlers()),
    )

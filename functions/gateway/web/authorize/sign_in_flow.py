"""The steps every browser flow of the authorize function shares: a pending authorization held by one browser,
sent through the workspace's sign-in, and finished with an answer.

A pending authorization (stored with a TTL; the handlers are stateless) is started either by an MCP client's
``/authorize`` (:mod:`gateway.web.authorize.app`) or by an upstream connect link
(:mod:`gateway.web.authorize.upstream_connect`, client id :data:`CONNECT_CLIENT_ID`). :func:`start_sign_in` stores it,
binds it to the browser with a signed cookie and sends the browser to the workspace's sign-in: the dev login form
(``/{ws}/login?p=<pending>``) or the OpenID Provider (``state`` = the signed pending id).
:mod:`gateway.web.authorize.sign_in_pages` receives the user and continues the flow of the pending's kind.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditTrail
from gateway.config import DevLoginProvider, GatewayConfig, OidcProvider, Workspace
from gateway.identity import dev_login
from gateway.oauth.authorization import AlreadyAnswered, AuthorizationService
from gateway.oauth.authorize_request import AuthorizingClient, ClientLookup, RedirectableError, error_redirect
from gateway.oauth.errors import ErrorCode, OAuthError
from gateway.rate_limits import RateLimit
from gateway.routes import Route
from gateway.settings import Settings
from gateway.storage.ports import ApiKeyStore
from gateway.storage.records import ClientSource, PendingAuthorization
from gateway.web.common import cookies
from gateway.web.common.pages import PageError, redirect
from gateway.web.common.rate_limiting import RateLimitedServices, client_address, first_refusal, too_many_requests
from gateway.web.common.responses import NO_STORE
from gateway.web.common.services import GatewayState

if TYPE_CHECKING:
    from gateway.identity.oidc import RelyingParty
    from gateway.upstream.services import UpstreamOAuth

logger = logging.getLogger("gateway.authorize")

# The client id of a pending authorization that is an upstream connect (a reconnect link's sign-in), not an MCP
# client's /authorize: no code is ever issued for it (gateway.web.authorize.upstream_connect).
MY_CONNECTIONS_CLIENT_ID = "urn:mcp-gateway:my-connections"  # the stand-in client of /{ws}/connections
ADMIN_CONSOLE_CLIENT_ID = "urn:mcp-gateway:admin-console"  # the stand-in client of /{ws}/admin (the console)
CONNECT_CLIENT_ID = "urn:mcp-gateway:upstream-connect"

EXPIRED = (
    "This sign-in request has expired or was already used. Start again from your application "
    "(reconnect the MCP server)."
)


class AuthorizeServices(GatewayState, RateLimitedServices, Protocol):
    """What the authorize function needs of its container."""

    config: GatewayConfig
    settings: Settings

    @property
    def authorization(self) -> AuthorizationService: ...

    @property
    def api_keys(self) -> ApiKeyStore: ...

    @property
    def shared_secret(self) -> bytes: ...

    @property
    def client_resolver(self) -> ClientLookup: ...

    @property
    def upstream_oauth(self) -> UpstreamOAuth: ...

    @property
    def audit(self) -> AuditTrail: ...

    def relying_party(self, workspace_name: str, provider: OidcProvider) -> RelyingParty:
        """Raises ``SecretUnavailableError`` when the provider's client secret cannot be read."""
        ...


@dataclass(frozen=True, slots=True)
class Context:
    """One request of a browser flow, with the container's services."""

    services: AuthorizeServices
    request: Request

    @property
    def base_url(self) -> str:
        return self.services.base_url

    @property
    def secret(self) -> bytes:
        return self.services.shared_secret

    @property
    def authorization(self) -> AuthorizationService:
        return self.services.authorization

    def now(self) -> int:
        return self.services.now()


def workspace_of(ctx: Context, name: str) -> Workspace:
    workspace = ctx.services.routes.workspace(name)
    if workspace is None:
        raise PageError(404, "Not found", f"There is no workspace {name!r} on this gateway.")
    return workspace


def route_of(ctx: Context, pending: PendingAuthorization) -> Route:
    route = ctx.services.routes.by_key(pending.route_key)
    if route is None:
        raise PageError(404, "Not found", "The MCP server of this request is no longer configured.")
    return route


def held_pending(ctx: Context, pending_id: str | None, workspace_name: str) -> PendingAuthorization:
    """The pending authorization named in the URL or form, provided this browser started it (cookie)."""
    if not pending_id or len(pending_id) > 200:
        raise PageError(
            400,
            "No sign-in in progress",
            "This page continues a sign-in that an MCP client started: open the route in your MCP client to sign in. "
            f"What you authorized is on My connections: {ctx.base_url}/{workspace_name}/connections",
        )
    pending = ctx.authorization.held(pending_id, ctx.now())
    if pending is None or pending.route_key.partition("/")[0] != workspace_name:
        raise PageError(400, "Sign-in expired", EXPIRED)
    if not cookies.holds_pending(ctx.request.cookies, pending_id, ctx.base_url, ctx.secret):
        # RFC 6749 §10.12: the flow must continue in the browser that started it.
        raise PageError(
            400,
            "Sign-in not recognised",
            "This sign-in was started in another browser, or your browser blocked the gateway's cookie. "
            "Start again from your application in this browser.",
        )
    return pending


def check_csrf(pending: PendingAuthorization, form: FormData) -> None:
    presented = form.get("csrf")
    if not isinstance(presented, str) or not hmac.compare_digest(presented.encode(), pending.csrf_token.encode()):
        raise PageError(400, "Request refused", "The form could not be verified (CSRF check failed). Start again.")


@dataclass(frozen=True, slots=True)
class ConnectClient:
    """What the sign-in pages show as "who is asking" during a connect link's sign-in."""

    client_id: str
    client_name: str
    source: ClientSource
    redirect_uris: tuple[str, ...]
    client_uri: str | None = None
    logo_uri: str | None = None


def connect_client(route: Route) -> ConnectClient:
    return ConnectClient(
        CONNECT_CLIENT_ID, f"Connect your account for {route.title}", "preregistered", (route.connect_endpoint({}),)
    )


async def client_of(ctx: Context, route: Route, client_id: str) -> AuthorizingClient:
    """The client a pending authorization is for (or the connect flow's stand-in)."""
    if client_id == CONNECT_CLIENT_ID:
        return connect_client(route)
    if client_id == MY_CONNECTIONS_CLIENT_ID:  # the user's own connections page (web/connections_page.py)
        return ConnectClient(
            client_id, "Your connections", "preregistered", (f"{route.base_url}/{route.workspace_name}/connections",)
        )
    if client_id == ADMIN_CONSOLE_CLIENT_ID:  # the admin console (web/authorize/console_sign_in.py)
        return ConnectClient(
            client_id, "The admin console", "preregistered", (f"{route.base_url}/{route.workspace_name}/admin",)
        )
    try:
        return await ctx.services.client_resolver.resolve(route, client_id, ctx.now())
    except OAuthError as error:
        raise PageError(
            400, "Unknown application", f"The application is no longer known: {error.description}"
        ) from None


def error_url(route: Route, pending: PendingAuthorization, error: ErrorCode, description: str) -> str:
    """The client's redirect URI carrying an OAuth error (RFC 6749 §4.1.2.1)."""
    return error_redirect(route, RedirectableError(OAuthError(error, description), pending.redirect_uri, pending.state))


def consume(ctx: Context, pending: PendingAuthorization) -> None:
    """Take the pending authorization out of the store before acting on it, so that it produces one answer: a
    consent form submitted twice (or from two tabs, or a sign-in form posted twice) gets one code; the other
    request sees the sign-in as used. A conditional delete decides (GrantStore.take_pending)."""
    try:
        ctx.authorization.consume(pending, ctx.now())
    except AlreadyAnswered:
        raise PageError(400, "Sign-in expired", EXPIRED) from None


def forget_cookie(ctx: Context, pending: PendingAuthorization, response: Response) -> Response:
    cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    return response


def finish(ctx: Context, pending: PendingAuthorization, response: Response) -> Response:
    """The pending authorization's answer is ``response`` (one without side effects: a denial): consume it, and
    forget its cookie."""
    consume(ctx, pending)
    return forget_cookie(ctx, pending, response)


def relying_party(ctx: Context, workspace_name: str, provider: OidcProvider) -> RelyingParty:
    from gateway.secrets import SecretUnavailableError

    try:
        return ctx.services.relying_party(workspace_name, provider)
    except SecretUnavailableError as problem:
        logger.error("identity provider client secret of workspace %s unavailable: %s", workspace_name, problem)
        raise PageError(
            503,
            "Sign-in is unavailable",
            "The gateway cannot read its identity-provider credentials right now. Try again shortly.",
        ) from None


def idp_unavailable(reason: str) -> PageError:
    return PageError(
        502,
        "Sign-in failed",
        "The workspace's identity provider could not complete the sign-in.",
        hint=f"Details for your administrator: {reason}",
    )


def sign_in_starts_refused(ctx: Context) -> Response | None:
    """429 once the client's address has started its limit of sign-ins this minute, else None.

    Every start stores a pending authorization before anyone signed in: /authorize, a signed-out visit to My
    connections, a connect link or the shared account's connect address. Each is counted here, per address, before
    it writes (docs/non-interactive.md, "Rate limits"). Per address only: nothing at this point authenticates a
    client, so counting by the client a request names would let anyone spend another's limit.
    """
    limit = RateLimit("authorize-ip", ctx.services.settings.rate_limit_authorize_per_ip)
    refused = first_refusal(ctx.services, [(limit, client_address(ctx.request))])
    return None if refused is None else too_many_requests(refused, NO_STORE)


def stand_in_pending(
    ctx: Context, route: Route, client_id: str, redirect_uri: str, state: str | None = None
) -> PendingAuthorization:
    """A pending authorization for one of the gateway's own stand-in clients (connecting an upstream account, the
    user's connections page): the workspace's sign-in, with no OAuth client behind it."""
    return ctx.authorization.start_stand_in(route, client_id, redirect_uri, state, ctx.now())


async def sign_in_for_page(ctx: Context, workspace_name: str, client_id: str, page_url: str, title: str) -> Response:
    """Send a signed-out browser through the workspace's sign-in on behalf of one of the gateway's own pages (My
    connections, the admin console: the stand-in ``client_id``); once signed in it returns to ``page_url``
    (:func:`return_to_page`)."""
    # The sign-in is the workspace's; a pending authorization names a route, so it carries the workspace's first.
    route = next((r for r in ctx.services.routes.all() if r.workspace_name == workspace_name), None)
    if route is None:
        raise PageError(404, "Not found", "This workspace has no MCP server.")
    refused = sign_in_starts_refused(ctx)  # a signed-out visit stores a pending authorization: counted first
    if refused is not None:
        return refused
    return await start_sign_in(ctx, route, stand_in_pending(ctx, route, client_id, page_url), title)


def return_to_page(ctx: Context, pending: PendingAuthorization) -> Response:
    """The sign-in :func:`sign_in_for_page` started succeeded (the caller starts the session): back to the page."""
    ctx.authorization.abandon(pending.pending_id)
    response = redirect(pending.redirect_uri)
    cookies.clear_pending_cookie(response, pending.pending_id, ctx.base_url)
    return response


async def start_sign_in(ctx: Context, route: Route, pending: PendingAuthorization, client_name: str) -> Response:
    """Store ``pending``, bind it to this browser (cookie) and send the browser to the workspace's sign-in."""
    policy = ctx.services.config.oauth
    settings = ctx.services.settings
    workspace_name = route.workspace_name
    provider = route.workspace.identity_provider
    if isinstance(provider, DevLoginProvider):
        if not dev_login.is_allowed(provider, settings):
            raise PageError(
                403,
                "Sign-in is not configured",
                dev_login.refusal_reason(settings),
                return_url=error_url(route, pending, "server_error", "the workspace's sign-in is not configured"),
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
            target = await relying_party(ctx, workspace_name, provider).authorization_url(state=state, secrets=secrets)
        except OidcError as problem:
            raise idp_unavailable(str(problem)) from None
    ctx.authorization.hold(pending)
    response = redirect(target)
    cookies.set_pending_cookie(
        response, pending.pending_id, ctx.base_url, ctx.secret, policy.pending_authorization_ttl_seconds
    )
    return response

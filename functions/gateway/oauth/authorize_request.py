"""The authorization request (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, MCP 2025-11-25 "Authorization"): parsed and
validated into an :class:`AuthorizeRequest`, or refused.

Two kinds of refusal, as RFC 6749 §4.1.2.1 requires:

- :class:`UnsafeToRedirect` — the client is unknown or the redirect URI is missing, unregistered or repeated. The
  user agent MUST NOT be sent to the redirect URI: the caller shows an HTML page saying what is wrong.
- :class:`RedirectableError` — any other problem, once client and redirect URI are known good: the answer for the
  client is its redirect URI with ``error``, ``error_description``, ``state`` and ``iss`` (RFC 9207), followed at
  once only when the gateway trusts that URI (:func:`redirects_automatically`, RFC 9700 §4.11.2), else offered as a
  link on the gateway's own error page.

Tolerated client quirks (design brief §5): ``scope`` absent (Claude Code) means the route's default scopes;
``resource`` absent (Claude Code, Codex) means the route; a ``resource`` with one trailing slash is the route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

from gateway.crypto.pkce import is_valid_challenge
from gateway.oauth.errors import ErrorCode, OAuthError
from gateway.oauth.redirect_uris import redirect_uri_matches
from gateway.routes import Route
from gateway.storage.records import ClientSource

MAX_STATE_LENGTH = 2048  # generous: some clients pack JSON into state, but an unbounded value is stored per request


class AuthorizingClient(Protocol):
    """What /authorize needs to know about a client (satisfied by ``gateway.oauth.clients.ClientInfo``)."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_name(self) -> str: ...
    @property
    def source(self) -> ClientSource: ...
    @property
    def redirect_uris(self) -> tuple[str, ...]: ...
    @property
    def client_uri(self) -> str | None: ...
    @property
    def logo_uri(self) -> str | None: ...


class ClientLookup(Protocol):
    """Finds a client of a route by id (satisfied by ``gateway.oauth.clients.ClientResolver``). Raises
    :class:`OAuthError` (``invalid_client``) when it is unknown or its metadata document is unusable."""

    async def resolve(self, route: Route, client_id: str, now: int) -> AuthorizingClient: ...


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    client: AuthorizingClient
    redirect_uri: str
    state: str | None
    code_challenge: str
    scopes: tuple[str, ...]
    resource: str


class UnsafeToRedirect(Exception):
    """The request cannot be answered at the redirect URI (RFC 6749 §4.1.2.1): show ``title`` and ``description``."""

    def __init__(self, title: str, description: str, status_code: int = 400) -> None:
        super().__init__(description)
        self.title = title
        self.description = description
        self.status_code = status_code


class RedirectableError(Exception):
    """An error to send to the client's redirect URI (RFC 6749 §4.1.2.1).

    ``client`` is the client that asked, when known: :func:`redirects_automatically` says whether the browser may be
    sent to the redirect URI without the user's say.
    """

    def __init__(
        self, error: OAuthError, redirect_uri: str, state: str | None, client: AuthorizingClient | None = None
    ) -> None:
        super().__init__(error.description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state
        self.client = client


def redirects_automatically(client: AuthorizingClient | None) -> bool:
    """Whether an error for ``client`` may be answered with a redirect the user does not see.

    RFC 9700 §4.11.2: the authorization server MUST only redirect automatically to a redirect URI it trusts, or it
    becomes an open redirector (register ``https://evil.example/cb``, send a victim to ``/authorize`` without
    ``response_type``, and the gateway's URL forwards them there). A pre-registered client's redirect URIs were
    vouched for by an administrator; a dynamically registered one's or a metadata document's were written by
    whoever registered, so their errors are shown on the gateway's own page, with a link back the user may follow.
    """
    return client is not None and client.source == "preregistered"


def redirect_with(redirect_uri: str, params: dict[str, str | None]) -> str:
    """``redirect_uri`` with ``params`` added to its query, keeping the query it has (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    added = urlencode({key: value for key, value in params.items() if value is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_redirect(route: Route, error: RedirectableError) -> str:
    """The authorization error response, with ``iss`` (RFC 9207 §2) so the client can detect mix-up attacks."""
    return redirect_with(
        error.redirect_uri,
        {
            "error": error.error.error,
            "error_description": error.error.description,
            "state": error.state,
            "iss": route.issuer,
        },
    )


def _single(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The parameter's value; None when absent. Repeating a parameter is an error (RFC 6749 §3.1)."""
    values = [value for key, value in params if key == name]
    if len(values) > 1:
        raise ValueError(name)
    return values[0] if values else None


async def parse_authorize_request(
    params: Sequence[tuple[str, str]], route: Route, clients: ClientLookup, now: int
) -> AuthorizeRequest:
    """Validate an authorization request for ``route``. Raises :class:`UnsafeToRedirect` or
    :class:`RedirectableError`; never anything else for any input."""
    client, redirect_uri = await _client_and_redirect(params, route, clients, now)

    try:
        state = _single(params, "state")
    except ValueError:  # a repeated state cannot be echoed faithfully
        error = OAuthError("invalid_request", "the state parameter is repeated")
        raise RedirectableError(error, redirect_uri, None, client) from None

    def fail(error: ErrorCode, description: str) -> RedirectableError:
        return RedirectableError(OAuthError(error, description), redirect_uri, state, client)

    if state is not None and len(state) > MAX_STATE_LENGTH:
        raise fail("invalid_request", f"state is longer than {MAX_STATE_LENGTH} characters")
    seen: set[str] = set()
    for key, _ in params:
        # RFC 6749 §3.1: parameters MUST NOT appear more than once (RFC 8707 allows several `resource`).
        if key in seen and key != "resource":
            raise fail("invalid_request", f"the {key} parameter is repeated")
        seen.add(key)

    response_type = _single(params, "response_type")
    if response_type is None:
        raise fail("invalid_request", "response_type is required (use response_type=code)")
    if response_type != "code":
        raise fail("unsupported_response_type", f"response_type {response_type!r} is not supported; use 'code'")
    response_mode = _single(params, "response_mode")
    if response_mode not in (None, "query"):
        raise fail("invalid_request", f"response_mode {response_mode!r} is not supported; use 'query'")

    # PKCE with S256 is required (OAuth 2.1 §4.1.1, MCP 2025-11-25 "Authorization Code Protection"); a missing
    # method would mean `plain` (RFC 7636 §4.3), which is refused.
    challenge = _single(params, "code_challenge")
    method = _single(params, "code_challenge_method")
    if challenge is None:
        raise fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256")
    if method is None:
        raise fail("invalid_request", "code_challenge_method is required and must be S256 (plain is not accepted)")
    if method != "S256":
        raise fail("invalid_request", f"code_challenge_method {method!r} is not supported; use S256")
    if not is_valid_challenge(challenge):
        raise fail("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the verifier")

    # RFC 8707 §2: the resource is this route's MCP endpoint; absent means this route (one issuer per route).
    resources = [value for key, value in params if key == "resource"]
    for resource in resources:
        if not route.is_resource(resource):
            raise fail("invalid_target", f"resource {resource!r} is not served here; this server is {route.resource}")

    # RFC 6749 §3.3: space-delimited scopes; absent (or empty) means the route's defaults.
    scope = _single(params, "scope")
    scopes = tuple(dict.fromkeys(scope.split())) if scope else ()
    if not scopes:
        scopes = tuple(route.default_scopes)
    unknown = [name for name in scopes if name not in route.scopes_supported]
    if unknown:
        raise fail(
            "invalid_scope",
            f"unknown scope(s) {' '.join(unknown)}; this server offers {' '.join(route.scopes_supported)}",
        )

    return AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        scopes=scopes,
        resource=route.resource,
    )


async def _client_and_redirect(
    params: Sequence[tuple[str, str]], route: Route, clients: ClientLookup, now: int
) -> tuple[AuthorizingClient, str]:
    try:
        client_id = _single(params, "client_id")
    except ValueError:
        raise UnsafeToRedirect("Invalid request", "The client_id parameter is repeated.") from None
    if not client_id:
        raise UnsafeToRedirect("Invalid request", "The request has no client_id: the application is misconfigured.")
    try:
        client = await clients.resolve(route, client_id, now)
    except OAuthError as error:
        if error.error == "temporarily_unavailable":
            raise UnsafeToRedirect("Try again shortly", error.description, 503) from None
        raise UnsafeToRedirect(
            "Unknown application",
            f"The application that sent you here is not registered with {route.title} ({error.description}). "
            "It may need to register again.",
        ) from None

    try:
        requested = _single(params, "redirect_uri")
    except ValueError:
        raise UnsafeToRedirect("Invalid request", "The redirect_uri parameter is repeated.") from None
    if requested is None:
        # OAuth 2.1 §4.1.1: optional only when the client registered exactly one.
        if len(client.redirect_uris) != 1:
            raise UnsafeToRedirect(
                "Invalid request",
                f"{client.client_name} did not say where to return (redirect_uri), and it has "
                f"{len(client.redirect_uris)} registered redirect URIs.",
            )
        return client, client.redirect_uris[0]
    if not redirect_uri_matches(client.redirect_uris, requested):
        raise UnsafeToRedirect(
            "Invalid redirect URI",
            f"{client.client_name} asked to return to {requested}, which is not one of its registered redirect "
            "URIs. For your safety you were not sent there.",
        )
    return client, requested

"""Dynamic Client Registration (RFC 7591) at the gateway's own ``/register`` (the server side; the gateway
registering itself at an upstream is :mod:`gateway.upstream.client_registration`): parse a client's metadata, decide
what is registered, answer.

Registrations belong to one route (``RegisteredClient.route_key``: one issuer per route) and expire when unused for
``OAuthPolicy.unused_client_ttl_seconds``; each use slides the expiry (see :mod:`gateway.oauth.clients`).

RFC 7591 §3.2.1 lets the server "reject or replace any of the client's requested metadata values"; the response
carries what was actually registered. This module uses that latitude deliberately:

- **Default ``token_endpoint_auth_method`` is ``none``**, not RFC 7591 §2's ``client_secret_basic``: MCP clients
  that omit it are public native apps (PKCE is mandatory anyway), and both MCP SDKs authenticate the way the response
  says. A client asking for ``client_secret_basic``/``client_secret_post`` gets a secret, stored only as a hash; one
  asking for ``private_key_jwt`` (RFC 7523) registers its public keys (``jwks_uri`` or ``jwks``) and gets no secret.
- ``grant_types`` defaults to ``authorization_code`` plus ``refresh_token`` when the route issues refresh tokens.
  ``authorization_code`` and ``response_types`` ``code`` are required (the only flow offered); other grant and response
  types are dropped rather than refused, so a client that lists extras still registers.
- ``client_uri``/``logo_uri`` are kept only when they are https URLs (the consent page shows ``client_uri`` as
  text; no page loads ``logo_uri``: fetching it would tell the client's server who views consent); a ``scope`` is
  narrowed to the route's scopes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.crypto.hashing import hash_secret, random_token
from gateway.display_text import visible_text
from gateway.oauth.errors import OAuthError
from gateway.oauth.redirect_uris import MAX_LENGTH as MAX_URI_LENGTH
from gateway.oauth.redirect_uris import InvalidRedirectUri, is_loopback_redirect, validate_redirect_uri
from gateway.routes import OFFLINE_ACCESS, Route
from gateway.storage.records import AuthMethod, RegisteredClient
from gateway.tokens.foreign_jwts import InvalidKeySet, KeySet

SUPPORTED_AUTH_METHODS: tuple[AuthMethod, ...] = (
    "none", "client_secret_basic", "client_secret_post", "private_key_jwt",
)  # fmt: skip
DEFAULT_AUTH_METHOD: AuthMethod = "none"
MAX_REDIRECT_URIS = 20
MAX_TEXT = 200
UNNAMED_CLIENT = "Unnamed client"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RegistrationRequest(BaseModel):
    """The client metadata of RFC 7591 §2 that the gateway reads. Other members are accepted and ignored.

    pydantic refuses strings holding lone surrogates (valid JSON, invalid Unicode), so nothing stored or echoed
    back fails to encode as UTF-8.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    redirect_uris: list[str] | None = Field(default=None, max_length=MAX_REDIRECT_URIS)
    token_endpoint_auth_method: str | None = None
    grant_types: list[str] | None = Field(default=None, max_length=20)
    response_types: list[str] | None = Field(default=None, max_length=20)
    client_name: str | None = Field(default=None, max_length=MAX_TEXT)
    client_uri: str | None = None
    logo_uri: str | None = None
    scope: str | None = Field(default=None, max_length=1000)
    software_id: str | None = Field(default=None, max_length=MAX_TEXT)
    software_version: str | None = Field(default=None, max_length=MAX_TEXT)
    application_type: str | None = None
    jwks_uri: str | None = Field(default=None, max_length=MAX_URI_LENGTH)
    jwks: dict[str, Any] | None = None
    dpop_bound_access_tokens: bool = False


@dataclass(frozen=True, slots=True)
class IssuedRegistration:
    """A new registration and, for a confidential client, its secret (shown to the client once, never stored)."""

    client: RegisteredClient
    client_secret: str | None


def parse_registration(data: object) -> RegistrationRequest:
    """Validate the JSON body of a registration request; raises :class:`OAuthError` saying what is wrong."""
    if not isinstance(data, dict):
        raise OAuthError("invalid_client_metadata", "the client metadata must be a JSON object")
    try:
        return RegistrationRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "metadata"
        code: Literal["invalid_redirect_uri", "invalid_client_metadata"] = (
            "invalid_redirect_uri" if field.startswith("redirect_uris") else "invalid_client_metadata"
        )
        raise OAuthError(code, f"{field}: {first['msg']}") from None


def new_registration(
    request: RegistrationRequest, route: Route, now: int, unused_ttl_seconds: int
) -> IssuedRegistration:
    """Decide what is registered for ``request`` at ``route`` (RFC 7591 §3.2.1). Raises :class:`OAuthError`."""
    redirect_uris = _redirect_uris(request.redirect_uris)
    method = _auth_method(request.token_endpoint_auth_method)
    jwks_uri, jwks = _keys(request, method)
    secret = random_token(32) if method in ("client_secret_basic", "client_secret_post") else None
    client = RegisteredClient(
        client_id=random_token(24),
        route_key=route.key,
        client_name=_text(request.client_name, "client_name") or UNNAMED_CLIENT,
        redirect_uris=redirect_uris,
        token_endpoint_auth_method=method,
        client_secret_hash=hash_secret(secret) if secret is not None else None,
        created_at=now,
        last_used_at=now,
        expires_at=now + unused_ttl_seconds,
        grant_types=_grant_types(request.grant_types, route),
        response_types=_response_types(request.response_types),
        scope=_scope(request.scope, route),
        application_type=_application_type(request.application_type, redirect_uris),
        client_uri=_https_url(request.client_uri),
        logo_uri=_https_url(request.logo_uri),
        software_id=_text(request.software_id, "software_id"),
        software_version=_text(request.software_version, "software_version"),
        jwks_uri=jwks_uri,
        jwks=jwks,
        dpop_bound_access_tokens=request.dpop_bound_access_tokens,
    )
    return IssuedRegistration(client=client, client_secret=secret)


def registration_response(issued: IssuedRegistration) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the client identifier, its secret when one was issued, and all registered metadata."""
    client = issued.client
    body: dict[str, Any] = {"client_id": client.client_id, "client_id_issued_at": client.created_at}
    if issued.client_secret is not None:
        body["client_secret"] = issued.client_secret
        body["client_secret_expires_at"] = 0  # the secret does not expire (the registration may, when unused)
    body.update(
        {
            "client_name": client.client_name,
            "redirect_uris": list(client.redirect_uris),
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "grant_types": list(client.grant_types),
            "response_types": list(client.response_types),
            "application_type": client.application_type,
        }
    )
    optional = {
        "scope": client.scope,
        "client_uri": client.client_uri,
        "logo_uri": client.logo_uri,
        "software_id": client.software_id,
        "software_version": client.software_version,
        "jwks_uri": client.jwks_uri,
        "jwks": client.jwks,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    if client.dpop_bound_access_tokens:
        body["dpop_bound_access_tokens"] = True
    return body


# --- the individual decisions ----------------------------------------------------------------------------------


def _redirect_uris(uris: list[str] | None) -> tuple[str, ...]:
    # RFC 7591 §2: redirect_uris is required for redirect-based flows, the only kind this server offers.
    if not uris:
        raise OAuthError("invalid_redirect_uri", "redirect_uris is required and must list at least one URI")
    for uri in uris:
        try:
            validate_redirect_uri(uri)
        except InvalidRedirectUri as problem:
            raise OAuthError("invalid_redirect_uri", str(problem)) from None
    return tuple(dict.fromkeys(uris))


def _auth_method(requested: str | None) -> AuthMethod:
    if requested is None:
        return DEFAULT_AUTH_METHOD
    for method in SUPPORTED_AUTH_METHODS:
        if requested == method:
            return method
    raise OAuthError(
        "invalid_client_metadata",
        f"token_endpoint_auth_method {requested!r} is not supported; use one of {', '.join(SUPPORTED_AUTH_METHODS)}",
    )


def _keys(request: RegistrationRequest, method: AuthMethod) -> tuple[str | None, dict[str, Any] | None]:
    """RFC 7591 §2: ``jwks_uri`` or ``jwks`` (not both); ``private_key_jwt`` (RFC 7523 §2.2) needs one of them. Keys
    of another method's client are not kept: nothing would use them."""
    if method != "private_key_jwt":
        return None, None
    if request.jwks_uri is not None and request.jwks is not None:
        raise OAuthError("invalid_client_metadata", "send jwks_uri or jwks, not both (RFC 7591 §2)")
    if request.jwks_uri is not None:
        if _https_url(request.jwks_uri) is None:
            raise OAuthError("invalid_client_metadata", "jwks_uri must be an https URL")
        return request.jwks_uri, None
    if request.jwks is None:
        raise OAuthError("invalid_client_metadata", "private_key_jwt needs the client's public keys: jwks_uri or jwks")
    try:
        KeySet.from_json(request.jwks)
    except InvalidKeySet as problem:
        raise OAuthError("invalid_client_metadata", f"jwks: {problem}") from None
    return None, request.jwks


def _grant_types(requested: list[str] | None, route: Route) -> tuple[str, ...]:
    offered = ["authorization_code"]
    if route.server.refresh_tokens:
        offered.append("refresh_token")
    if requested is None:
        return tuple(offered)
    # RFC 7591 §2.1: response_types "code" goes with grant_types "authorization_code".
    if "authorization_code" not in requested:
        raise OAuthError(
            "invalid_client_metadata",
            "grant_types must include 'authorization_code', the only flow this server offers",
        )
    return tuple(grant for grant in offered if grant in requested)


def _response_types(requested: list[str] | None) -> tuple[str, ...]:
    if requested is not None and "code" not in requested:
        raise OAuthError(
            "invalid_client_metadata", "response_types must include 'code' (OAuth 2.1 has no implicit flow)"
        )
    return ("code",)


def _scope(requested: str | None, route: Route) -> str | None:
    if requested is None:
        return None
    supported = set(route.scopes_supported) | {OFFLINE_ACCESS}
    kept = [scope for scope in dict.fromkeys(requested.split()) if scope in supported]
    return " ".join(kept) or None


def _application_type(requested: str | None, redirect_uris: tuple[str, ...]) -> str:
    if requested in ("web", "native"):
        return requested
    # OpenID Connect DCR §2: web clients use https redirects; anything with a loopback or custom scheme is native.
    web = all(urlsplit(uri).scheme.lower() == "https" for uri in redirect_uris)
    return "web" if web and not any(is_loopback_redirect(uri) for uri in redirect_uris) else "native"


def _https_url(value: str | None) -> str | None:
    if not value or len(value) > MAX_URI_LENGTH or _CONTROL.search(value) or " " in value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    return value if parts.scheme == "https" and parts.hostname and parts.username is None else None


def _text(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    if _CONTROL.search(value):
        raise OAuthError("invalid_client_metadata", f"{field} must not contain control characters")
    return visible_text(value).strip() or None  # no bidi overrides or zero-width characters (gateway.display_text)

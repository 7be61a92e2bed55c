"""Client authentication at the token and revocation endpoints (RFC 6749 §2.3, RFC 7009 §2.1).

Methods: ``none`` (``client_id`` in the form), ``client_secret_basic`` (HTTP Basic, RFC 6749 §2.3.1),
``client_secret_post`` (``client_id`` and ``client_secret`` in the form) and ``private_key_jwt`` (a
``client_assertion`` signed by the client's key, RFC 7523 §2.2: :mod:`gateway.oauth.client_assertions`). A client
whose metadata document offers both ``private_key_jwt`` and ``none`` (ChatGPT's) may come either way.

Tolerated, because real clients do it:

- a public client sending Basic with an empty secret, or Codex, which registers ``none`` and then sends Basic with its
  id (openai/codex #40928): a client without a secret is accepted and any presented secret is ignored — it proves
  nothing, and PKCE binds the code to the client that asked for it;
- a confidential client using the other secret method than it registered (Basic instead of post or the reverse):
  accepted when the secret verifies, both being equally strong.

Failures raise :class:`ClientAuthenticationError` (``invalid_client``, 401); when the client tried Basic, its
``headers`` carry ``WWW-Authenticate: Basic`` as RFC 6749 §5.2 requires.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from gateway.oauth.client_assertions import ClientAssertions, InvalidClientAssertion, asserted_client_id, assertion_in
from gateway.oauth.clients import ClientInfo, ClientResolver
from gateway.oauth.errors import OAuthError

if TYPE_CHECKING:
    from gateway.routes import Route

BASIC_CHALLENGE = 'Basic realm="token", charset="UTF-8"'


class ClientAuthenticationError(OAuthError):
    """``invalid_client`` with the response headers the endpoint must send."""

    def __init__(self, description: str, *, basic_used: bool) -> None:
        super().__init__("invalid_client", description, 401)
        self.headers = {"WWW-Authenticate": BASIC_CHALLENGE} if basic_used else {}


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    client_id: str
    client_secret: str


def parse_basic(authorization: str | None) -> BasicCredentials | None:
    """Credentials from an ``Authorization: Basic`` header, None for no header or another scheme.

    RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding, so they are decoded here. Raises
    :class:`ClientAuthenticationError` for a malformed Basic header.
    """
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ClientAuthenticationError(
            "the Authorization header is not valid Basic credentials", basic_used=True
        ) from None
    client_id, separator, secret = decoded.partition(":")
    if not separator or not client_id:
        raise ClientAuthenticationError("Basic credentials must be 'client_id:client_secret'", basic_used=True)
    return BasicCredentials(unquote_plus(client_id), unquote_plus(secret))


async def authenticate_client(
    resolver: ClientResolver,
    route: Route,
    form: Mapping[str, str],
    authorization: str | None,
    now: int,
    assertions: ClientAssertions | None = None,
) -> ClientInfo:
    """The client making this token or revocation request, authenticated by whatever method it used; its
    :attr:`ClientInfo.authenticated_by` says which (None for a public client)."""
    assertion = assertion_in(form)
    if assertion is not None:
        return await _by_assertion(resolver, route, form, authorization, now, assertion, assertions)
    basic = parse_basic(authorization)
    basic_used = basic is not None
    form_id = form.get("client_id") or None
    form_secret = form.get("client_secret") or None

    if basic is not None:
        if form_secret is not None and basic.client_secret:
            # RFC 6749 §2.3: a client MUST NOT use more than one authentication method in a request.
            raise OAuthError("invalid_request", "send the client secret either in Basic or in the body, not both")
        if form_id is not None and form_id != basic.client_id:
            raise ClientAuthenticationError("client_id in the body differs from the Basic credentials", basic_used=True)
        client_id = basic.client_id
        presented = basic.client_secret or form_secret
    elif form_id is not None:
        client_id = form_id
        presented = form_secret
    else:
        raise ClientAuthenticationError("client authentication is required: send client_id", basic_used=False)

    client = await _resolve(resolver, route, client_id, now, basic_used=basic_used)
    if client.has_secret and presented:
        if not resolver.secret_matches(client, presented):
            raise ClientAuthenticationError("client authentication failed", basic_used=basic_used)
        return replace(client, authenticated_by="client_secret_post" if form_secret else "client_secret_basic")
    if client.is_public:
        return client  # public client: any presented secret is ignored (see the module docstring)
    if client.has_secret:
        raise ClientAuthenticationError(
            f"this client must authenticate with its client secret ({client.token_endpoint_auth_method})",
            basic_used=basic_used,
        )
    raise ClientAuthenticationError(
        "this client must authenticate with private_key_jwt: send client_assertion_type="
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer and a client_assertion signed by its key",
        basic_used=basic_used,
    )


async def _by_assertion(
    resolver: ClientResolver,
    route: Route,
    form: Mapping[str, str],
    authorization: str | None,
    now: int,
    assertion: str,
    assertions: ClientAssertions | None,
) -> ClientInfo:
    """RFC 7523 §2.2: ``client_assertion`` authenticates the client; ``client_id`` may be left out (the assertion's
    ``sub`` names it) and, when sent, must be the same."""
    if form.get("client_secret") or parse_basic(authorization) is not None:
        # RFC 6749 §2.3: one authentication method per request.
        raise OAuthError("invalid_request", "send either a client_assertion or a client secret, not both")
    client_id = asserted_client_id(assertion)
    if form.get("client_id") not in (None, client_id):
        raise InvalidClientAssertion("client_id differs from the client assertion's sub")
    client = await _resolve(resolver, route, client_id, now, basic_used=False)
    if not client.has_keys or assertions is None:
        raise InvalidClientAssertion(
            f"this client has no registered keys; it authenticates with {client.token_endpoint_auth_method}"
        )
    await assertions.verify(assertion, client, (route.issuer, route.endpoint("token")), now)
    return replace(client, authenticated_by="private_key_jwt")


async def _resolve(resolver: ClientResolver, route: Route, client_id: str, now: int, *, basic_used: bool) -> ClientInfo:
    try:
        return await resolver.resolve(route, client_id, now)
    except OAuthError as problem:
        if problem.error == "invalid_client":
            raise ClientAuthenticationError(problem.description, basic_used=basic_used) from None
        raise

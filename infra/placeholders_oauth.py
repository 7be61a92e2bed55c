"""Fillers of the token function's sample-event placeholders, registered with :mod:`infra.placeholders`.

``{{AUTHORIZATION_CODE}}`` and ``{{CODE_VERIFIER}}`` are a fresh code, stored as /authorize would store it for the
dev user and the ``local-invoke`` client, and the PKCE verifier that matches its challenge (one pair per event, so
both placeholders of one event agree). ``{{REFRESH_TOKEN}}`` is the refresh token of a fresh grant, made by
redeeming such a code through the token service. The ``local-invoke`` client is registered at the event's route as
a public client (``none``) that never expires, the first time it is needed.

Importing this module registers the fillers; :mod:`infra.placeholders` imports it at its end.
"""

from __future__ import annotations

from gateway.crypto import pkce
from gateway.crypto.hashing import random_token
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import new_code
from gateway.oauth.token_requests import AuthorizationCodeRequest
from infra.placeholders import (
    LOCAL_CLIENT_ID,
    LOCAL_REDIRECT_URI,
    LOCAL_SUBJECT,
    PlaceholderContext,
    ensure_local_client,
    placeholder,
)

_CODE_KEY = "_oauth_code"
_VERIFIER_KEY = "_oauth_code_verifier"


def _new_code(context: PlaceholderContext) -> tuple[str, str]:
    """Store a fresh authorization code for the event's route; return (code, verifier)."""
    runtime = context.runtime
    route = context.route()
    now = runtime.now()
    ensure_local_client(runtime, route)
    verifier = random_token(48)
    issued = new_code(
        route=route,
        client_id=LOCAL_CLIENT_ID,
        redirect_uri=LOCAL_REDIRECT_URI,
        code_challenge=pkce.s256(verifier),
        scopes=tuple(route.default_scopes),
        user=SignedInUser(LOCAL_SUBJECT),
        signed_in_at=now,
        now=now,
        lifetime_seconds=runtime.config.oauth.authorization_code_ttl_seconds,
    )
    # the token function creates the grant under this id when it redeems the code
    context.leftovers.grants.append(issued.record.grant_id)
    runtime.grants.put_code(issued.record)
    return issued.value, verifier


def _event_code(context: PlaceholderContext) -> tuple[str, str]:
    """The one (code, verifier) pair of this event, made on first use by either placeholder."""
    if _CODE_KEY not in context.values:
        context.values[_CODE_KEY], context.values[_VERIFIER_KEY] = _new_code(context)
    return context.values[_CODE_KEY], context.values[_VERIFIER_KEY]


@placeholder("AUTHORIZATION_CODE")
def _authorization_code(context: PlaceholderContext) -> str:
    """A fresh, unredeemed authorization code of the dev user for the ``local-invoke`` client."""
    return _event_code(context)[0]


@placeholder("CODE_VERIFIER")
def _code_verifier(context: PlaceholderContext) -> str:
    """The PKCE verifier of this event's ``{{AUTHORIZATION_CODE}}``."""
    return _event_code(context)[1]


@placeholder("REFRESH_TOKEN")
def _refresh_token(context: PlaceholderContext) -> str:
    """The current refresh token of a fresh grant (a code redeemed through the token service)."""
    runtime = context.runtime
    route = context.route()
    code, verifier = _new_code(context)
    service = runtime.token_service
    request = AuthorizationCodeRequest(
        grant_type="authorization_code", code=code, redirect_uri=LOCAL_REDIRECT_URI, code_verifier=verifier
    )
    response = service.exchange_code(route, LOCAL_CLIENT_ID, request, runtime.now())
    if response.refresh_token is None:
        raise LookupError(f"route {route.key} issues no refresh tokens (refresh_tokens: false)")
    return response.refresh_token

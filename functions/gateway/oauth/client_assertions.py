"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): the client proves its
identity with a short-lived JWT signed by a key whose public half it registered (``jwks_uri`` or ``jwks`` in its
metadata document, its registration or the configuration).

Checks, each a reason of its own in the ``invalid_client`` answer: an asymmetric algorithm (never ``none`` or HMAC);
the signature by one of the client's keys; ``iss`` = ``sub`` = the client id; ``aud`` naming this authorization
server (its issuer or its token endpoint: OIDC Core §9 names the token endpoint, RFC 7523 §3 the server, and clients
send either); ``exp`` not passed and at most :data:`MAX_LIFETIME_SECONDS` ahead; a ``jti`` not seen before for this
client (RFC 7523 §3 item 7: a conditional write that remembers it until the assertion expires, shared by every
container).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from gateway.oauth.errors import OAuthError
from gateway.oauth.key_sets import KeySetSource, KeySetUnavailable
from gateway.tokens.foreign_jwts import (
    SKEW_SECONDS,
    InvalidJwt,
    InvalidKeySet,
    KeySet,
    algorithm_of,
    audiences,
    check_lifetime,
    header_of,
    string_claim,
    unverified_claims,
    verify_signature,
)

if TYPE_CHECKING:
    from gateway.oauth.clients import ClientInfo
    from gateway.storage.ports import SingleUseStore

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME_SECONDS = 300
# JWTs of other kinds must not pass for a client assertion (RFC 8725 §3.11: explicit typing prevents confusion).
_OTHER_TYPES = frozenset({"at+jwt", "dpop+jwt", "oauth-id-jag+jwt", "application/at+jwt"})


class InvalidClientAssertion(OAuthError):
    def __init__(self, description: str) -> None:
        super().__init__("invalid_client", description, 401)


def assertion_in(form: Mapping[str, str]) -> str | None:
    """The form's ``client_assertion`` (RFC 7521 §4.2), None when the client did not send one."""
    kind, assertion = form.get("client_assertion_type"), form.get("client_assertion")
    if kind is None and assertion is None:
        return None
    if kind is None or assertion is None:
        raise OAuthError("invalid_request", "client_assertion and client_assertion_type go together (RFC 7521 §4.2)")
    if kind != CLIENT_ASSERTION_TYPE:
        raise InvalidClientAssertion(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
    return assertion


def asserted_client_id(assertion: str) -> str:
    """The client an assertion speaks for (its ``sub``, RFC 7523 §3 item 2), read before it is verified: only to
    know whose keys verify it."""
    try:
        return string_claim(unverified_claims(assertion), "sub", max_length=2048)
    except InvalidJwt as problem:
        raise InvalidClientAssertion(f"the client assertion is unusable: {problem}") from None


def replay_key(client_id: str, jti: str) -> str:
    return "client-assertion#" + hashlib.sha256(f"{client_id}\0{jti}".encode()).hexdigest()


class ClientAssertions:
    """Verifies client assertions. One per container (its key sets are cached)."""

    def __init__(self, key_sets: KeySetSource, single_use: SingleUseStore) -> None:
        self._key_sets = key_sets
        self._single_use = single_use

    async def verify(self, assertion: str, client: ClientInfo, audience: Collection[str], now: int) -> None:
        """Raises :class:`InvalidClientAssertion` saying what is wrong; ``StorageError`` when the record of used
        assertions cannot be written (the caller answers 503)."""
        try:
            header = header_of(assertion)
            algorithm = algorithm_of(header)
            if header.get("typ") in _OTHER_TYPES:
                raise InvalidJwt(f"a {header['typ']} JWT is not a client assertion")
            keys = await self._keys_of(client, now, header.get("kid"))
            claims = verify_signature(assertion, keys.candidates(header.get("kid"), algorithm), algorithm)
            if string_claim(claims, "iss") != client.client_id or string_claim(claims, "sub") != client.client_id:
                raise InvalidJwt("its iss and sub must both be the client_id (RFC 7523 §3)")
            if not set(audiences(claims)) & set(audience):
                raise InvalidJwt(f"its aud must name this authorization server ({' or '.join(audience)})")
            expires_at = check_lifetime(claims, now, max_lifetime=MAX_LIFETIME_SECONDS)
            jti = string_claim(claims, "jti", max_length=256)
        except InvalidJwt as problem:
            raise InvalidClientAssertion(f"the client assertion is invalid: {problem}") from None
        if not self._single_use.use(replay_key(client.client_id, jti), expires_at + SKEW_SECONDS, now):
            raise InvalidClientAssertion("the client assertion was already used (its jti is single-use)")

    async def _keys_of(self, client: ClientInfo, now: int, kid: object) -> KeySet:
        if client.jwks is not None:
            try:
                return KeySet.from_json(client.jwks)
            except InvalidKeySet as problem:
                raise InvalidJwt(f"the client's registered keys are unusable: {problem}") from None
        if client.jwks_uri is None:
            raise InvalidJwt("the client has no registered keys")
        try:
            return await self._key_sets.get(client.jwks_uri, now, kid=kid)
        except KeySetUnavailable as problem:
            raise InvalidJwt(str(problem)) from None

"""JWT access tokens per RFC 9068 ("JWT Profile for OAuth 2.0 Access Tokens"), bound to one route (audience).

Issuing makes one call to the :class:`Signer` (one KMS Sign); verifying is local against the cached public keys.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import jwt
from jwt.exceptions import InvalidTokenError as _PyJwtInvalid

from gateway.routes import Route
from gateway.tokens.keys import ALGORITHM, PublicKeySource, Signer, b64url

TOKEN_TYPE = "at+jwt"  # RFC 9068 §2.1
LEEWAY_SECONDS = 30


class InvalidAccessToken(Exception):
    """The token is malformed, forged, expired or meant for another audience. The message is safe to return."""


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    issuer: str
    subject: str
    audience: str
    client_id: str
    scopes: tuple[str, ...]
    grant_id: str
    token_id: str
    issued_at: int
    expires_at: int
    jkt: str | None = None
    """RFC 9449 §6.1 ``cnf.jkt``: the token is bound to this DPoP key (None: a bearer token)."""

    @property
    def user_id(self) -> str:
        return self.subject


class AccessTokens:
    """Issues and verifies the gateway's access tokens."""

    def __init__(self, signer: Signer | None, public_keys: PublicKeySource, default_lifetime_seconds: int) -> None:
        self._signer = signer
        self._public_keys = public_keys
        self._default_lifetime = default_lifetime_seconds

    def issue(
        self,
        *,
        route: Route,
        subject: str,
        client_id: str,
        scopes: list[str] | tuple[str, ...],
        grant_id: str,
        lifetime_seconds: int | None = None,
        now: int | None = None,
        jkt: str | None = None,
    ) -> str:
        """A signed access token; with ``jkt``, bound to that DPoP key (RFC 9449 §6.1: ``cnf.jkt``)."""
        if self._signer is None:
            raise RuntimeError("this function has no signing key")
        issued_at = int(time.time()) if now is None else now
        lifetime = self._default_lifetime if lifetime_seconds is None else lifetime_seconds
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": self._signer.kid}
        payload: dict[str, object] = {
            "iss": route.issuer,
            "sub": subject,
            "aud": route.resource,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "gid": grant_id,
            "jti": secrets.token_urlsafe(16),
            "iat": issued_at,
            "exp": issued_at + lifetime,
        }
        if jkt is not None:
            payload["cnf"] = {"jkt": jkt}
        signing_input = f"{_segment(header)}.{_segment(payload)}".encode("ascii")
        signature = self._signer.sign(signing_input)
        return f"{signing_input.decode('ascii')}.{b64url(signature)}"

    def verify(
        self, token: str, *, route: Route, now: float | None = None, expired_within: int = 0
    ) -> AccessTokenClaims:
        """Verify signature, type, issuer, audience and lifetime for ``route`` at ``now`` (the caller's clock; the
        system clock when omitted); raise :class:`InvalidAccessToken`. The gateway's one verification of its access
        tokens (the proxy's, and revocation's, which passes ``expired_within``: a token that expired at most that
        long ago still identifies its grant)."""
        try:
            header = jwt.get_unverified_header(token)  # only to choose the key; everything is verified below
        except _PyJwtInvalid:
            raise InvalidAccessToken("the access token is malformed") from None
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidAccessToken("the token is not an access token")
        key = self._public_keys.public_keys().get(str(header.get("kid")))
        if key is None:
            raise InvalidAccessToken("the access token was signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=route.resource,
                issuer=route.issuer,
                # The lifetime is judged below against the caller's clock, not pyjwt's own reading of the time.
                options={
                    "require": ["exp", "iat", "sub", "aud", "iss", "client_id", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise InvalidAccessToken("the access token was issued for another resource") from None
        except _PyJwtInvalid:
            raise InvalidAccessToken("the access token is invalid") from None
        _check_lifetime(claims, time.time() if now is None else now, expired_within)
        confirmation = claims.get("cnf")
        jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
        return AccessTokenClaims(
            issuer=claims["iss"],
            subject=claims["sub"],
            audience=route.resource,
            client_id=claims["client_id"],
            scopes=tuple(str(claims.get("scope", "")).split()),
            grant_id=str(claims.get("gid", "")),
            token_id=claims["jti"],
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            jkt=jkt if isinstance(jkt, str) else None,
        )


def _check_lifetime(claims: Mapping[str, object], now: float, expired_within: int) -> None:
    """RFC 7519 §4.1.4 and §4.1.6 with :data:`LEEWAY_SECONDS` of clock skew: ``exp`` passed (more than
    ``expired_within`` ago), ``iat`` in the future (a token from a signer whose clock runs ahead), or either not a
    number is invalid."""
    expires_at, issued_at = claims["exp"], claims["iat"]
    if not _is_number(expires_at) or not _is_number(issued_at):
        raise InvalidAccessToken("the access token is invalid")
    if expires_at <= now - LEEWAY_SECONDS - expired_within:  # type: ignore[operator]
        raise InvalidAccessToken("the access token has expired")
    if issued_at > now + LEEWAY_SECONDS:  # type: ignore[operator]
        raise InvalidAccessToken("the access token is invalid")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _segment(value: Mapping[str, object]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())

"""Refresh tokens derived from the grant, not stored.

Token ``n`` of a grant is ``<grant_id>.<n>.<mac>`` where ``mac = base64url(HMAC-SHA256(shared_secret, "mcp-gateway
refresh token" | grant_id | refresh_salt | n))``. The grant keeps only its current generation and salt, so presenting
generation ``n - 1`` shortly after a rotation can be answered with generation ``n`` again (the same successor), and
nothing secret is stored. The MAC is checked (in constant time) before the generation is looked at: a forged token
naming an old generation must not be able to revoke someone's grant.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from gateway.oauth.errors import OAuthError
from gateway.tokens.keys import b64url

_DOMAIN = b"mcp-gateway refresh token"
# grant ids are opaque random strings (no dots); generations are canonical decimals; the MAC is 32 bytes base64url.
_TOKEN = re.compile(r"^([A-Za-z0-9_~:-]{1,200})\.(0|[1-9][0-9]{0,9})\.([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class RefreshTokenRef:
    """What a presented refresh token claims to be; :func:`is_authentic` says whether it is."""

    grant_id: str
    generation: int
    mac: str


def _mac(secret: bytes, grant_id: str, refresh_salt: str, generation: int) -> str:
    message = b"\x00".join((_DOMAIN, grant_id.encode(), refresh_salt.encode(), str(generation).encode()))
    return b64url(hmac.new(secret, message, hashlib.sha256).digest())


def derive(secret: bytes, grant_id: str, refresh_salt: str, generation: int) -> str:
    """The refresh token of ``generation`` of a grant."""
    return f"{grant_id}.{generation}.{_mac(secret, grant_id, refresh_salt, generation)}"


def parse(token: str) -> RefreshTokenRef:
    """Split a presented token; a malformed one is ``invalid_grant`` (RFC 6749 §5.2)."""
    match = _TOKEN.match(token)
    if match is None:
        raise OAuthError("invalid_grant", "the refresh token is malformed")
    return RefreshTokenRef(match.group(1), int(match.group(2)), match.group(3))


def try_parse(token: str) -> RefreshTokenRef | None:
    """Like :func:`parse`, None for anything that is not shaped like one of our refresh tokens."""
    match = _TOKEN.match(token)
    return None if match is None else RefreshTokenRef(match.group(1), int(match.group(2)), match.group(3))


def is_authentic(secret: bytes, ref: RefreshTokenRef, refresh_salt: str) -> bool:
    """Whether the token was made by us for this grant and generation (constant-time comparison)."""
    return hmac.compare_digest(_mac(secret, ref.grant_id, refresh_salt, ref.generation), ref.mac)

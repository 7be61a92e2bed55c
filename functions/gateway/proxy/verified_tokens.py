"""Access tokens this container has already verified, so a client's repeated calls skip the signature check.

A client sends the same token on every call until it expires. Verifying it (RS256 signature and every claim) is the
largest share of the gateway's own work per proxied request, so the first successful verification is remembered
per (route, token) until the token's ``exp`` (with the verifier's leeway). This changes nothing that could vary
between calls: the signature, issuer and audience of a given token string are fixed, the public keys are cached
per cold start anyway, and revocation is the grant-status check, made on every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.tokens.access_token import LEEWAY_SECONDS, AccessTokenClaims

if TYPE_CHECKING:
    from gateway.routes import Route
    from gateway.tokens.access_token import AccessTokens

MAX_ENTRIES = 4096


class VerifiedTokens:
    def __init__(
        self, tokens: AccessTokens, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self._tokens = tokens
        self._max_entries = max_entries
        self._clock = clock
        self._verified: dict[tuple[str, str], AccessTokenClaims] = {}
        self._lock = threading.Lock()

    def verify(self, token: str, route: Route) -> AccessTokenClaims:
        """Like :meth:`AccessTokens.verify`; raises :class:`InvalidAccessToken` the same way."""
        key = (route.key, token)
        now = self._clock()
        claims = self._verified.get(key)
        if claims is not None:
            if now < claims.expires_at + LEEWAY_SECONDS:
                return claims
            with self._lock:
                self._verified.pop(key, None)
        claims = self._tokens.verify(token, route=route, now=now)
        with self._lock:
            if len(self._verified) >= self._max_entries:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[key] = claims
        return claims

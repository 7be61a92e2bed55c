"""The session id the client sees: the upstream's ``Mcp-Session-Id`` sealed to one user and one route.

MCP Streamable HTTP (2025-03-26 and later, §Session Management) lets the server assign a session id at
``initialize``; the client sends it back on every request. The gateway never shows the upstream's id: it sends
``g1.`` + base64url(nonce ‖ AES-GCM(flags ‖ issued at ‖ upstream session id)), where

- the key is derived with HKDF-SHA256 from the deployment's shared secret (every container derives the same key,
  with no table and no KMS call), on first use: a container whose requests carry no session id to upstreams that
  assign none never reads the secret;
- the associated data is the route key and the user id, so the id only opens for the user and route it was issued
  to: another user, another route, a tampered or a foreign id all fail the same way, and the proxy answers 404 as the
  spec requires for a session id the server does not know;
- ``flags`` carry what the gateway must remember about the session, taken from the client's ``initialize`` (whether
  it declared URL elicitation, MCP 2025-11-25 §Elicitation), and whether the session is *deferred*: the user had
  not connected the upstream account at ``initialize``, so the gateway answered it and the upstream session is
  opened once the account is connected (:mod:`gateway.proxy.unconnected`); such an id carries what the client
  introduced itself with (its ``initialize`` params, trimmed) instead of an upstream session id;
- the id carries the time it was issued and opens for ``max_age_seconds`` from then
  (``GATEWAY_SESSION_MAX_AGE_SECONDS``, a day by default): a session id that leaked (a log, a proxy) does not serve
  its user forever. An expired id gets 404 like any unknown one, and the client initializes again (MCP §Session
  Management). Ids sealed without a time (before lifetimes existed) no longer open.

The result is visible ASCII (base64url, 0x21-0x7E), as the spec requires of session ids. Upstreams without sessions
(a stateless server, or the sessionless 2026-07-28 revision) send no id, and the client gets none.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "g1."
NONCE_BYTES = 12
HKDF_INFO = b"mcp-gateway/session-id/v1"
MAX_SESSION_ID_LENGTH = 4096  # generous: upstream ids are UUIDs or similar; a deferred one holds ~2 KB at most

FLAG_URL_ELICITATION = 0x01
FLAG_ISSUED_AT = 0x02  # four bytes of issue time (Unix seconds, big-endian) follow the flags
FLAG_DEFERRED = 0x04  # no upstream session yet: the rest is the client's introduction (JSON)
DEFAULT_MAX_AGE_SECONDS = 86400
CLOCK_SKEW_SECONDS = 60  # another container's clock may run a little ahead


class UnknownSession(Exception):
    """The session id was not issued by this gateway to this user for this route (or was altered)."""


@dataclass(frozen=True, slots=True)
class Session:
    upstream_session_id: str
    """The upstream's session id; for a deferred session, the client's introduction (compact JSON)."""
    url_elicitation: bool = False
    deferred: bool = False


def derive_key(shared_secret: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(shared_secret)


class SessionCodec:
    def __init__(
        self,
        key: bytes | Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        """``key``: the key, or how to get it when a session id is first sealed or opened."""
        self._key = key
        self._cipher: AESGCM | None = None
        self._clock = clock
        self.max_age_seconds = max_age_seconds

    @classmethod
    def from_shared_secret(
        cls,
        shared_secret: bytes | Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
    ) -> SessionCodec:
        """``shared_secret``: the secret, or how to read it (then only when a session id is first sealed or
        opened)."""
        if callable(shared_secret):
            read = shared_secret
            return cls(lambda: derive_key(read()), clock=clock, max_age_seconds=max_age_seconds)
        return cls(derive_key(shared_secret), clock=clock, max_age_seconds=max_age_seconds)

    @property
    def _aead(self) -> AESGCM:
        if self._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._cipher = AESGCM(self._key() if callable(self._key) else self._key)
        return self._cipher

    def seal(self, session: Session, *, route_key: str, user_id: str) -> str:
        flags = FLAG_ISSUED_AT | (FLAG_URL_ELICITATION if session.url_elicitation else 0)
        flags |= FLAG_DEFERRED if session.deferred else 0
        issued_at = int(self._clock()).to_bytes(4, "big")
        plaintext = bytes((flags,)) + issued_at + session.upstream_session_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, _associated_data(route_key, user_id))
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, session_id: str, *, route_key: str, user_id: str) -> Session:
        """The session in ``session_id``; :class:`UnknownSession` unless it was sealed for this user and route, and
        within its lifetime."""
        if not session_id.startswith(PREFIX) or len(session_id) > MAX_SESSION_ID_LENGTH:
            raise UnknownSession
        encoded = session_id[len(PREFIX) :]
        try:
            sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise UnknownSession from None
        if len(sealed) <= NONCE_BYTES + 16:
            raise UnknownSession
        from cryptography.exceptions import InvalidTag

        aead = self._aead
        try:
            plaintext = aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _associated_data(route_key, user_id))
        except InvalidTag:
            raise UnknownSession from None
        flags = plaintext[0]
        if not flags & FLAG_ISSUED_AT or len(plaintext) < 5:
            raise UnknownSession  # sealed before session ids had a lifetime
        age = int(self._clock()) - int.from_bytes(plaintext[1:5], "big")
        if not -CLOCK_SKEW_SECONDS <= age <= self.max_age_seconds:
            raise UnknownSession
        try:
            upstream_session_id = plaintext[5:].decode()
        except UnicodeDecodeError:
            raise UnknownSession from None
        return Session(
            upstream_session_id,
            url_elicitation=bool(flags & FLAG_URL_ELICITATION),
            deferred=bool(flags & FLAG_DEFERRED),
        )


def _associated_data(route_key: str, user_id: str) -> bytes:
    # Length-prefixed so ("a/b", "c") and ("a/bc", "") cannot collide.
    route = route_key.encode()
    return len(route).to_bytes(2, "big") + route + user_id.encode()

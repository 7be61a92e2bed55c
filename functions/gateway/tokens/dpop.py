"""DPoP proofs (RFC 9449): a JWT the client signs with a key it holds, sent in the ``DPoP`` header of each request,
which binds the tokens issued to it (``cnf.jkt``, §6.1) so a stolen token is useless without the key.

:func:`verify_proof` is §4.3's check, shared by the token endpoint and the MCP endpoint: one ``DPoP`` header; header
``typ`` ``dpop+jwt``, an asymmetric ``alg``, a public ``jwk`` (no private members) that verifies the signature;
``jti``; ``htm`` = the request's method; ``htu`` = its URL without query and fragment; ``iat`` within
:data:`MAX_AGE_SECONDS` past (and :data:`SKEW_SECONDS` ahead); with an access token, ``ath`` = its hash; a nonce
when the server requires one (§8). The caller remembers ``jti`` for the window (§11.1: replay).

Nonces (:class:`DpopNonces`) are stateless: the time window and an HMAC of it under the shared secret, valid for the
current and the previous window, so every container agrees without storing them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from jwt.exceptions import PyJWKError

from gateway.tokens.algorithms import ASYMMETRIC_ALGORITHMS
from gateway.tokens.foreign_jwts import (
    SKEW_SECONDS,
    InvalidJwt,
    PublicKey,
    algorithm_of,
    jwk_thumbprint,
    number_claim,
    parse,
    sha256_b64url,
    string_claim,
    verify_signature,
)

PROOF_TYPE = "dpop+jwt"
TOKEN_TYPE = "DPoP"
SIGNING_ALGORITHMS = ASYMMETRIC_ALGORITHMS  # dpop_signing_alg_values_supported (asymmetric only, §5.1)
MAX_AGE_SECONDS = 300
NONCE_WINDOW_SECONDS = 300
MAX_KEYS_CACHED = 1024
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidDpopProof(Exception):
    """The proof is missing, malformed, forged, stale or for another request; the message says which."""


class DpopNonceRequired(InvalidDpopProof):
    """The proof lacks the server's current nonce (RFC 9449 §8: answered ``use_dpop_nonce`` with a new one)."""


@dataclass(frozen=True, slots=True)
class DpopProof:
    jkt: str
    """RFC 7638 thumbprint of the proof's key: what ``cnf.jkt`` binds a token to."""
    jti: str
    issued_at: int

    def replay_key(self) -> str:
        """What a replay cache remembers: the key and the proof's id (a jti is unique per key, §4.2)."""
        return "dpop#" + hashlib.sha256(f"{self.jkt}\0{self.jti}".encode()).hexdigest()

    @property
    def remember_until(self) -> int:
        return self.issued_at + MAX_AGE_SECONDS + SKEW_SECONDS


def the_proof(values: list[str]) -> str:
    """The request's one ``DPoP`` header (RFC 9449 §4.3 item 1: not more than one)."""
    if len(values) != 1 or not values[0].strip():
        raise InvalidDpopProof("send exactly one DPoP header")
    return values[0].strip()


def canonical_url(url: str) -> str:
    """§4.3 item 9: ``htu`` is compared without query and fragment, scheme and host case-insensitively (RFC 3986
    §6.2.2.1), and a default port is the same as none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    netloc = host if port is None or port == default else f"{host}:{port}"
    if ":" in host:
        netloc = f"[{host}]" if port is None or port == default else f"[{host}]:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


class _KeyCache:
    """Parsed proof keys by their JWK members: a client signs every proof with one key, so the parse (the largest
    part of a proof check after the signature) is done once per key and container."""

    def __init__(self, max_entries: int = MAX_KEYS_CACHED) -> None:
        self._keys: OrderedDict[tuple[tuple[str, str], ...], PublicKey] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def key(self, jwk: Mapping[str, Any]) -> PublicKey:
        if not all(isinstance(value, str) for value in jwk.values()) or _PRIVATE_MEMBERS & set(jwk):
            raise InvalidJwt("the proof's jwk must be a public key")
        identity = tuple(sorted((str(name), str(value)) for name, value in jwk.items()))
        found = self._keys.get(identity)
        if found is not None:
            return found
        try:
            parsed = jwt.PyJWK(dict(jwk))
        except (PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            raise InvalidJwt("the proof's jwk is not a usable public key") from None
        key = PublicKey(None, None, parsed, jwk_thumbprint(jwk))
        with self._lock:
            self._keys[identity] = key
            while len(self._keys) > self._max:
                self._keys.popitem(last=False)
        return key


_KEYS = _KeyCache()


def verify_proof(
    proof: str,
    *,
    method: str,
    urls: Collection[str],
    now: float,
    access_token: str | None = None,
    nonce_ok: Callable[[object], bool] | None = None,
) -> DpopProof:
    """RFC 9449 §4.3 for a request ``method`` to one of ``urls`` (canonical forms, :func:`canonical_url`); raises
    :class:`InvalidDpopProof` (:class:`DpopNonceRequired` when ``nonce_ok`` refuses the proof's nonce)."""
    try:
        jws = parse(proof)
        header = jws.header
        if header.get("typ") != PROOF_TYPE:
            raise InvalidJwt(f"its typ must be {PROOF_TYPE}")
        algorithm = algorithm_of(header, SIGNING_ALGORITHMS)
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidJwt("its header must carry the public key (jwk)")
        key = _KEYS.key(jwk)
        claims = verify_signature(jws, [key], algorithm)
        jti = string_claim(claims, "jti", max_length=256)
        if claims.get("htm") != method:
            raise InvalidJwt(f"it was made for another method (htm must be {method})")
        htu = claims.get("htu")
        if not isinstance(htu, str) or canonical_url(htu) not in urls:
            raise InvalidJwt("it was made for another URL (htu)")
        issued_at = number_claim(claims, "iat")
        if issued_at < now - MAX_AGE_SECONDS or issued_at > now + SKEW_SECONDS:
            raise InvalidJwt(f"its iat is outside the accepted window ({MAX_AGE_SECONDS} s)")
        if access_token is not None and claims.get("ath") != sha256_b64url(access_token):
            raise InvalidJwt("its ath does not match the access token")
    except InvalidJwt as problem:
        raise InvalidDpopProof(f"the DPoP proof is invalid: {problem}") from None
    if nonce_ok is not None and not nonce_ok(claims.get("nonce")):
        raise DpopNonceRequired("the DPoP proof must carry the server's current nonce (DPoP-Nonce)")
    return DpopProof(key.thumbprint, jti, issued_at)


class DpopNonces:
    """Server-provided nonces (RFC 9449 §8) that need no storage: ``base64url(window ‖ HMAC(key, window))``."""

    def __init__(self, key: bytes, window_seconds: int = NONCE_WINDOW_SECONDS) -> None:
        self._key = hmac.new(key, b"mcp-gateway dpop nonce", hashlib.sha256).digest()
        self._window = window_seconds

    def _for(self, window: int) -> str:
        packed = struct.pack(">Q", window)
        mac = hmac.new(self._key, packed, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(packed + mac).rstrip(b"=").decode("ascii")

    def current(self, now: float) -> str:
        return self._for(int(now) // self._window)

    def is_valid(self, nonce: object, now: float) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (binascii.Error, ValueError):
            return False
        if len(raw) != 24:
            return False
        window = struct.unpack(">Q", raw[:8])[0]
        current = int(now) // self._window
        return window in (current, current - 1) and hmac.compare_digest(nonce, self._for(window))


class ProofReplayCache:
    """The proof ids a container has accepted, until their ``iat`` window closes (RFC 9449 §11.1): a replay within
    the window at the same container is refused. Bounded: at most ``max_entries`` proofs are remembered; past that
    the ones closest to expiry are forgotten first, so the bound (docs/clients.md "DPoP") is per container and
    window. Another container does not know them: the deployment may choose the shared store instead
    (``GATEWAY_DPOP_REPLAY=shared``, one conditional write per call)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: dict[str, int] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def first_use(self, proof: DpopProof, now: float) -> bool:
        key = proof.replay_key()
        with self._lock:
            until = self._seen.get(key)
            if until is not None and until > now:
                return False
            if len(self._seen) >= self._max:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                while len(self._seen) >= self._max:
                    del self._seen[min(self._seen, key=self._seen.__getitem__)]
            self._seen[key] = proof.remember_until
            return True

"""JWTs that others sign and the gateway verifies: client assertions (RFC 7523 §2.2), Identity Assertion JWT
Authorization Grants (draft-ietf-oauth-identity-assertion-authz-grant) and DPoP proofs (RFC 9449 §4).

The gateway's own access tokens are :mod:`gateway.tokens.access_token`; this module is the other direction: keys
published by a client or an identity provider as a JSON Web Key Set (RFC 7517 §5), asymmetric algorithms only (RFC
8725 §3.1: never ``none``, and never an HMAC algorithm, whose "public" key would be a shared secret), and the checks
every such JWT shares (``typ``, lifetime with a bounded skew, claims of the right JSON type). Each caller adds the
claims its own specification requires.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidTokenError as _PyJwtInvalid
from jwt.exceptions import PyJWKError

from gateway.tokens.algorithms import ASYMMETRIC_ALGORITHMS

MAX_JWT_BYTES = 16 * 1024
MAX_KEYS = 20
SKEW_SECONDS = 60
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class InvalidJwt(Exception):
    """The JWT is malformed, forged, expired or not what it claims to be. The message says which, without echoing
    the token, and is safe to return to the client."""


class InvalidKeySet(ValueError):
    """A JSON Web Key Set holds no usable public key; the message says why."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One verification key of a key set."""

    kid: str | None
    algorithm: str | None
    """The JWK's ``alg``, when it names one: the key is then used for that algorithm only."""
    jwk: jwt.PyJWK
    thumbprint: str


@dataclass(frozen=True, slots=True)
class KeySet:
    """The asymmetric public keys of a JSON Web Key Set (RFC 7517 §5)."""

    keys: tuple[PublicKey, ...]

    @classmethod
    def from_json(cls, data: object) -> KeySet:
        """A key set from a parsed JWKS document. Keys of other kinds (symmetric, private, encryption-only, of an
        unknown type) are left out; a set left with none raises :class:`InvalidKeySet`."""
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise InvalidKeySet("a JWK Set is a JSON object with a 'keys' array")
        keys: list[PublicKey] = []
        for member in data["keys"][: MAX_KEYS * 2]:
            key = _public_key(member)
            if key is not None:
                keys.append(key)
        if not keys:
            raise InvalidKeySet("the JWK Set has no asymmetric public signing key")
        return cls(tuple(keys[:MAX_KEYS]))

    def candidates(self, kid: object, algorithm: str) -> list[PublicKey]:
        """The keys that may have signed a JWT with this header's ``kid`` and ``alg``."""
        fitting = [key for key in self.keys if key.algorithm in (None, algorithm) and _fits(key.jwk, algorithm)]
        if isinstance(kid, str):
            return [key for key in fitting if key.kid == kid]
        return fitting


def _public_key(member: object) -> PublicKey | None:
    if not isinstance(member, dict) or _PRIVATE_MEMBERS & set(member):
        return None
    if member.get("use", "sig") != "sig" or member.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    algorithm = member.get("alg")
    if algorithm is not None and algorithm not in ASYMMETRIC_ALGORITHMS:
        return None
    try:
        parsed = jwt.PyJWK(member, algorithm=algorithm if isinstance(algorithm, str) else None)
    except (PyJWKError, _PyJwtInvalid, ValueError, TypeError, KeyError):
        return None
    kid = member.get("kid")
    return PublicKey(kid if isinstance(kid, str) else None, algorithm, parsed, jwk_thumbprint(member))


def _fits(key: jwt.PyJWK, algorithm: str) -> bool:
    kty = key.key_type
    if algorithm.startswith(("RS", "PS")):
        return kty == "RSA"
    if algorithm.startswith("ES"):
        return kty == "EC"
    return kty == "OKP"


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3: the base64url SHA-256 of the key's required members, sorted, without whitespace."""
    required = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    members = required.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        raise InvalidJwt("the key is not an RSA, EC or OKP public key")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sha256_b64url(text: str) -> str:
    """base64url(SHA-256(text)): RFC 9449 §4.2's ``ath`` of an access token."""
    return _b64url(hashlib.sha256(text.encode("ascii", "replace")).digest())


@dataclass(frozen=True, slots=True)
class CompactJws:
    """The parts of a compact JWS (RFC 7515 §7.1), decoded but not verified."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


def _segment(text: str) -> bytes:
    # One regex match checks the base64url alphabet (PyJWT checks it character by character in Python, which was
    # most of a DPoP proof's cost).
    if not _SEGMENT.fullmatch(text):
        raise InvalidJwt("the JWT is malformed: not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidJwt("the JWT is malformed: not base64url") from None


def parse(token: str) -> CompactJws:
    """A compact JWS's header, claims, signing input and signature, checked for shape only."""
    if len(token) > MAX_JWT_BYTES or token.count(".") != 2:
        raise InvalidJwt("not a signed JWT (three base64url parts)")
    header_text, claims_text, signature_text = token.split(".")
    try:
        header = json.loads(_segment(header_text))
        claims = json.loads(_segment(claims_text))
    except (ValueError, RecursionError):
        raise InvalidJwt("the JWT is malformed: its header or payload is not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidJwt("the JWT header and payload must be JSON objects")
    signing_input = f"{header_text}.{claims_text}".encode("ascii")
    return CompactJws(header, claims, signing_input, _segment(signature_text))


def header_of(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, checked for shape only (the signature is verified later)."""
    return parse(token).header


def algorithm_of(header: Mapping[str, Any], allowed: Sequence[str] = ASYMMETRIC_ALGORITHMS) -> str:
    """The header's ``alg`` when it is an allowed asymmetric algorithm (RFC 8725 §3.1)."""
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise InvalidJwt(f"the JWT algorithm {str(algorithm)[:20]!r} is not accepted; use one of {' '.join(allowed)}")
    return algorithm


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT *before* its signature is checked: only to find out which keys to verify it with (a
    client assertion's ``sub`` names the client). Nothing read here is trusted."""
    return parse(token).claims


def verify_signature(token: str | CompactJws, keys: Sequence[PublicKey], algorithm: str) -> dict[str, Any]:
    """The claims of ``token`` if one of ``keys`` verifies its signature under ``algorithm`` (an allowed one:
    :func:`algorithm_of`); no claim is judged here (each caller checks the claims its specification names, with
    :func:`check_lifetime` for the times)."""
    jws = parse(token) if isinstance(token, str) else token
    if not keys:
        raise InvalidJwt("no key of the signer matches the JWT's kid and alg")
    verifier = _algorithms()[algorithm]
    for key in keys:
        try:
            if verifier.verify(jws.signing_input, key.jwk.key, jws.signature):
                return jws.claims
        except (ValueError, TypeError, jwt.InvalidKeyError):
            continue
    raise InvalidJwt("the JWT signature does not verify with the signer's keys")


_ALGORITHMS: dict[str, Any] = {}


def _algorithms() -> dict[str, Any]:
    """PyJWT's algorithm objects of :data:`ASYMMETRIC_ALGORITHMS` (each verifies a signature over the signing input
    with a key object, converting JWS's raw ECDSA signatures as RFC 7518 §3.4 says)."""
    if not _ALGORITHMS:
        from jwt.algorithms import get_default_algorithms

        defaults = get_default_algorithms()
        _ALGORITHMS.update({name: defaults[name] for name in ASYMMETRIC_ALGORITHMS if name in defaults})
    return _ALGORITHMS


def string_claim(claims: Mapping[str, Any], name: str, *, max_length: int = 2048) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidJwt(f"the JWT needs a '{name}' claim (a string)")
    return value


def number_claim(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidJwt(f"the JWT needs a numeric '{name}' claim")
    return int(value)


def audiences(claims: Mapping[str, Any]) -> list[str]:
    """RFC 7519 §4.1.3: ``aud`` is a string or an array of strings."""
    value = claims.get("aud")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidJwt("the JWT needs an 'aud' claim")


def check_lifetime(claims: Mapping[str, Any], now: int, *, max_lifetime: int, require_iat: bool = False) -> int:
    """``exp`` not passed and at most ``max_lifetime`` ahead, ``nbf``/``iat`` not in the future (each with
    :data:`SKEW_SECONDS` of clock skew); returns ``exp``."""
    expires_at = number_claim(claims, "exp")
    if expires_at <= now - SKEW_SECONDS:
        raise InvalidJwt("the JWT has expired")
    if expires_at > now + max_lifetime + SKEW_SECONDS:
        raise InvalidJwt(f"the JWT expires too far ahead (at most {max_lifetime} seconds)")
    if "nbf" in claims and number_claim(claims, "nbf") > now + SKEW_SECONDS:
        raise InvalidJwt("the JWT is not valid yet (nbf)")
    if (require_iat or "iat" in claims) and number_claim(claims, "iat") > now + SKEW_SECONDS:
        raise InvalidJwt("the JWT was issued in the future (iat)")
    return expires_at

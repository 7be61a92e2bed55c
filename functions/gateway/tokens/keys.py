"""Signing and verification keys as ports, plus JWK helpers.

Access tokens are RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RSA 2048): see docs/architecture.md for the measurement
behind the choice (verification cost, token size, KMS price). The signer is remote (KMS) and the verifier is local:
verifying a token never calls KMS.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ALGORITHM = "RS256"


class KeyServiceUnavailable(Exception):
    """The key service failed (throttled, unreachable, refused): retry later. Adapters raise it for their own faults
    (as the DynamoDB adapters raise ``StorageError``), so callers answer 503 without knowing the SDK."""


class Signer(Protocol):
    """Signs JWS signing input (``base64url(header) + "." + base64url(payload)``) with RS256.

    ``kid`` MUST identify the public key that verifies the signature (its RFC 7638 thumbprint), so the JWKS can hold
    several keys during a rotation. A failure of the key service raises :class:`KeyServiceUnavailable`.
    """

    @property
    def kid(self) -> str: ...

    def sign(self, signing_input: bytes) -> bytes: ...


class PublicKeySource(Protocol):
    """The public keys that verify access tokens, by ``kid``. Implementations cache: called on every verification.
    A failure to fetch them raises :class:`KeyServiceUnavailable`."""

    def public_keys(self) -> dict[str, RSAPublicKey]: ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def public_jwk(key: RSAPublicKey) -> dict[str, str]:
    """The RFC 7517 JWK of an RSA public key, with ``kid`` = its RFC 7638 thumbprint."""
    numbers = key.public_numbers()
    jwk = {"e": _int_b64url(numbers.e), "kty": "RSA", "n": _int_b64url(numbers.n)}
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def load_der_public_key(der: bytes) -> RSAPublicKey:
    key = serialization.load_der_public_key(der)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the signing key is not an RSA key")
    return key


def kid_of(key: RSAPublicKey) -> str:
    return public_jwk(key)["kid"]


def jwks(keys: dict[str, RSAPublicKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [public_jwk(key) for key in keys.values()]}

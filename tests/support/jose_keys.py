"""Keys and JWTs a client or an enterprise identity provider would make: client assertions (RFC 7523), ID-JAGs and
DPoP proofs (RFC 9449), signed with real keys by PyJWT, for the tests of what the gateway verifies."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


@dataclass
class SigningKey:
    """An EC P-256 key pair (ES256) with a key id."""

    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}

    @property
    def private_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.private, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "ES256"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk]}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid, **header})


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """A JWT with ``alg: none`` (RFC 7519 §6): never accepted."""

    def part(value: dict[str, Any]) -> str:
        import json

        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', **header})}.{part(claims)}."


def client_assertion(key: SigningKey, client_id: str, audience: str, now: int, **changes: Any) -> str:
    """RFC 7523 §3 claims for ``client_id`` (``changes`` override or, given None, remove one)."""
    claims: dict[str, Any] = {
        "iss": client_id, "sub": client_id, "aud": audience, "jti": secrets.token_urlsafe(12),
        "iat": now, "exp": now + 120,
    }  # fmt: skip
    claims.update(changes)
    return key.sign({name: value for name, value in claims.items() if value is not None})


def dpop_proof(
    key: SigningKey, method: str, url: str, now: int, *, access_token: str | None = None, **changes: Any
) -> str:
    """An RFC 9449 §4.2 proof made with ``key``."""
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(12), "htm": method, "htu": url, "iat": now}
    if access_token is not None:
        claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
    claims.update(changes)
    public = {name: value for name, value in key.public_jwk.items() if name in ("kty", "crv", "x", "y")}
    return jwt.encode(
        {name: value for name, value in claims.items() if value is not None},
        key.private,
        algorithm="ES256",
        headers={"typ": "dpop+jwt", "jwk": public},
    )


def thumbprint(key: SigningKey) -> str:
    from gateway.tokens.foreign_jwts import jwk_thumbprint

    return jwk_thumbprint(key.public_jwk)

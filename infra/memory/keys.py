"""An in-process RSA key implementing both key ports: for unit tests and the in-memory wiring."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway.tokens.keys import kid_of

_shared: rsa.RSAPrivateKey | None = None


class LocalRsaKey:
    def __init__(self, key_size: int = 2048, *, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self._private = private_key or rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        self._public = self._private.public_key()
        self._kid = kid_of(self._public)
        self.sign_calls = 0

    @property
    def kid(self) -> str:
        return self._kid

    def sign(self, signing_input: bytes) -> bytes:
        self.sign_calls += 1
        return self._private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def public_keys(self) -> dict[str, RSAPublicKey]:
        return {self._kid: self._public}

    @classmethod
    def shared(cls) -> LocalRsaKey:
        """A key over the one private key this process generated for the in-memory runtimes (generating an RSA key
        costs tens of milliseconds; a test that needs a key of its own, another signer's, makes one with
        ``LocalRsaKey()``). Its ``sign_calls`` counter is its own."""
        global _shared
        if _shared is None:
            _shared = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(private_key=_shared)

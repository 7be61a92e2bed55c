"""An in-process :class:`~gateway.upstream.cipher.TokenCipher` for tests and local benchmarks: AES-256-GCM under a key
held in memory, with the same binding to the encryption context as the KMS adapter, and counters a test can read."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.upstream.cipher import DecryptionFailed, context_aad


class LocalTokenCipher:
    """AES-256-GCM under a key held in memory, the context as associated data (tests, never a deployment)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._aead = AESGCM(key or AESGCM.generate_key(bit_length=256))
        self.encryptions = 0
        self.decryptions = 0

    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        self.encryptions += 1
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context_aad(context))

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        self.decryptions += 1
        try:
            return self._aead.decrypt(ciphertext[:12], ciphertext[12:], context_aad(context))
        except (InvalidTag, ValueError):
            raise DecryptionFailed("the upstream credential does not decrypt under this context") from None

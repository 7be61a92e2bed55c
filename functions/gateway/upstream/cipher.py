"""How upstream token sets are encrypted at rest: a :class:`TokenCipher` binds each ciphertext to an encryption
context (workspace, server, subject), so a row copied to another user or route does not decrypt.

The deployed adapter is :class:`gateway.aws.kms_cipher.KmsTokenCipher` (KMS envelope encryption);
:class:`infra.memory.cipher.LocalTokenCipher` is an in-process stand-in for tests with the same binding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol


class DecryptionFailed(Exception):
    """The ciphertext is corrupt, or was made under another encryption context or key."""


class CipherUnavailable(Exception):
    """The key service failed (throttled, unreachable): retry later; nothing is wrong with the data."""


class TokenCipher(Protocol):
    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        """Encrypt ``plaintext`` bound to ``context``. Raises :class:`CipherUnavailable`."""
        ...

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        """Decrypt; MUST raise :class:`DecryptionFailed` unless ``context`` equals the one used to encrypt."""
        ...


def context_aad(context: Mapping[str, str]) -> bytes:
    """The encryption context as AES-GCM associated data: canonical JSON, so key order does not matter."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


def encryption_context(route_key: str, subject: str) -> dict[str, str]:
    workspace, _, server = route_key.partition("/")
    return {"workspace": workspace, "server": server, "subject": subject}

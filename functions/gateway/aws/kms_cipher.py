"""KMS envelope encryption of upstream token sets (the :class:`gateway.upstream.cipher.TokenCipher` adapter).

KMS ``Encrypt`` takes at most 4 KB, less than a token set with a large JWT access token, a refresh token and a client
secret can need; so each write asks KMS for a fresh data key (``GenerateDataKey``, AES-256) under the encryption
context ``{workspace, server, subject}`` and seals the token set locally with AES-256-GCM, the same context as
associated data. The stored blob is ``v1 | len(encrypted key) | encrypted key | nonce | ciphertext``. Decrypting
asks KMS to decrypt the data key with the context from the row's key, so a row copied to another user or route
fails at KMS (``InvalidCiphertextException``) — the context is never stored, it is recomputed by the reader.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.upstream.cipher import CipherUnavailable, DecryptionFailed, context_aad

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_VERSION = b"v1"
_NONCE_BYTES = 12
_DATA_KEY_FAILURES = frozenset({"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"})


class KmsTokenCipher:
    def __init__(self, kms: KMSClient, key_id: str) -> None:
        self._kms = kms
        self._key_id = key_id

    def encrypt(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        try:
            response = self._kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=dict(context)
            )
        except (ClientError, BotoCoreError) as error:
            raise CipherUnavailable(f"KMS GenerateDataKey failed: {type(error).__name__}") from None
        encrypted_key = response["CiphertextBlob"]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(response["Plaintext"]).encrypt(nonce, plaintext, context_aad(context))
        return _VERSION + struct.pack(">H", len(encrypted_key)) + encrypted_key + nonce + sealed

    def decrypt(self, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        if ciphertext[:2] != _VERSION or len(ciphertext) < 4:
            raise DecryptionFailed("unknown upstream credential format")
        (key_length,) = struct.unpack(">H", ciphertext[2:4])
        encrypted_key = ciphertext[4 : 4 + key_length]
        rest = ciphertext[4 + key_length :]
        if len(encrypted_key) != key_length or len(rest) <= _NONCE_BYTES:
            raise DecryptionFailed("truncated upstream credential")
        try:
            response = self._kms.decrypt(
                CiphertextBlob=encrypted_key, KeyId=self._key_id, EncryptionContext=dict(context)
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _DATA_KEY_FAILURES:
                raise DecryptionFailed("the upstream credential does not decrypt under this context") from None
            raise CipherUnavailable(f"KMS Decrypt failed: {type(error).__name__}") from None
        except BotoCoreError as error:
            raise CipherUnavailable(f"KMS Decrypt failed: {type(error).__name__}") from None
        try:
            return AESGCM(response["Plaintext"]).decrypt(rest[:_NONCE_BYTES], rest[_NONCE_BYTES:], context_aad(context))
        except InvalidTag:
            raise DecryptionFailed("the upstream credential does not decrypt under this context") from None

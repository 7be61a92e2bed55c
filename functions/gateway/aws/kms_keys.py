"""KMS implementations of the key ports: RS256 signing with ``MessageType=RAW`` and cached public keys.

``MessageType=RAW`` lets KMS hash the JWS signing input itself (≤ 4096 bytes); moto ignores ``DIGEST``, and RAW works
the same on AWS. Public keys are fetched once per cold start (GetPublicKey) and cached for the container's life. A
failed KMS call is :class:`~gateway.tokens.keys.KeyServiceUnavailable` (the port's error), never a botocore one.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gateway.tokens.keys import KeyServiceUnavailable, kid_of, load_der_public_key

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

SIGNING_ALGORITHM: Final = "RSASSA_PKCS1_V1_5_SHA_256"
MAX_RAW_MESSAGE = 4096


class KmsPublicKeys:
    """Public keys of the signing key and of keys kept for verification during a rotation."""

    def __init__(self, kms: KMSClient, key_ids: tuple[str, ...]) -> None:
        self._kms = kms
        self._key_ids = key_ids
        self._keys: dict[str, RSAPublicKey] | None = None
        self._kid_by_key_id: dict[str, str] = {}
        self._lock = threading.Lock()

    def public_keys(self) -> dict[str, RSAPublicKey]:
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    keys: dict[str, RSAPublicKey] = {}
                    for key_id in self._key_ids:
                        try:
                            response = self._kms.get_public_key(KeyId=key_id)
                        except (ClientError, BotoCoreError) as error:
                            raise KeyServiceUnavailable(f"KMS GetPublicKey failed: {_code(error)}") from None
                        key = load_der_public_key(response["PublicKey"])
                        kid = kid_of(key)
                        keys[kid] = key
                        self._kid_by_key_id[key_id] = kid
                    self._keys = keys
        return self._keys

    def kid_for(self, key_id: str) -> str:
        self.public_keys()
        return self._kid_by_key_id[key_id]


class KmsSigner:
    """Signs with the KMS key ``key_id``: one KMS Sign call per token."""

    def __init__(self, kms: KMSClient, key_id: str, public_keys: KmsPublicKeys) -> None:
        self._kms = kms
        self._key_id = key_id
        self._public_keys = public_keys

    @property
    def kid(self) -> str:
        return self._public_keys.kid_for(self._key_id)

    def sign(self, signing_input: bytes) -> bytes:
        if len(signing_input) > MAX_RAW_MESSAGE:
            raise ValueError("token too large for a KMS RAW signature")
        try:
            response = self._kms.sign(
                KeyId=self._key_id, Message=signing_input, MessageType="RAW", SigningAlgorithm=SIGNING_ALGORITHM
            )
        except (ClientError, BotoCoreError) as error:
            raise KeyServiceUnavailable(f"KMS Sign failed: {_code(error)}") from None
        return response["Signature"]


def _code(error: Exception) -> str:
    """The error's code (``ThrottlingException``) or type: enough to log, never a message that could carry data."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__

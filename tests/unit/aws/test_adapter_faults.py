"""The AWS adapters speak their ports' language when AWS fails: each turns a botocore error into its port's error
(StorageError, KeyServiceUnavailable, CipherUnavailable, DecryptionFailed, SecretUnavailableError), so no caller
above the composition root ever sees, or has to catch, a botocore exception (docs/architecture.md, the adapters).

Two kinds of fault, each as real as it can be made without AWS: the service cannot be reached (real botocore clients
pointed at a closed port on 127.0.0.1, no retries), and the service answers an error (botocore's own Stubber, for
answers such as throttling that the local stand-in never gives).
"""

from __future__ import annotations

import socket
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from gateway.aws.dynamodb_grants import DynamoGrantStore
from gateway.aws.kms_cipher import KmsTokenCipher
from gateway.aws.kms_keys import KmsPublicKeys, KmsSigner
from gateway.aws.shared_secret import read_shared_secret
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError
from gateway.tokens.keys import KeyServiceUnavailable
from gateway.upstream.cipher import CipherUnavailable, DecryptionFailed, encryption_context

KEY_ID = "11111111-2222-3333-4444-555555555555"
CONTEXT = encryption_context("acme/notes", "alice")


@pytest.fixture(scope="module")
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def client(service: str, endpoint: str) -> Any:
    session = botocore.session.get_session()
    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=1)
    return session.create_client(
        service, region_name="us-east-1", endpoint_url=endpoint, config=config,
        aws_access_key_id="test", aws_secret_access_key="test",  # the stand-in credentials botocore signs with
    )  # fmt: skip


@pytest.fixture
def unreachable(closed_port: int) -> dict[str, Any]:
    endpoint = f"http://127.0.0.1:{closed_port}"
    return {service: client(service, endpoint) for service in ("kms", "dynamodb", "secretsmanager")}


def test_an_unreachable_key_service_is_the_signers_own_error(unreachable: dict[str, Any]) -> None:
    # Given the KMS adapters pointed at a key service that does not answer
    public_keys = KmsPublicKeys(unreachable["kms"], (KEY_ID,))
    signer = KmsSigner(unreachable["kms"], KEY_ID, public_keys)

    # Then reading the public keys and signing fail with the port's error, never botocore's
    with pytest.raises(KeyServiceUnavailable):
        public_keys.public_keys()
    with pytest.raises(KeyServiceUnavailable):
        signer.sign(b"header.payload")


def test_an_unreachable_key_service_is_the_ciphers_own_error(unreachable: dict[str, Any]) -> None:
    cipher = KmsTokenCipher(unreachable["kms"], KEY_ID)
    with pytest.raises(CipherUnavailable):
        cipher.encrypt(b"token set", CONTEXT)


def test_an_unreachable_table_is_a_storage_error(unreachable: dict[str, Any]) -> None:
    grants = DynamoGrantStore(unreachable["dynamodb"], "grants")
    with pytest.raises(StorageError):
        grants.get_grant("a-grant")


def test_an_unreachable_secret_store_is_a_secret_error(unreachable: dict[str, Any]) -> None:
    with pytest.raises(SecretUnavailableError) as raised:
        read_shared_secret(unreachable["secretsmanager"], "mcp-gateway/shared")
    assert "mcp-gateway/shared" in str(raised.value)  # names the secret, never a value


def test_a_throttled_decryption_is_unavailable_and_a_context_mismatch_is_a_failed_decryption(
    unreachable: dict[str, Any],
) -> None:
    # Given a sealed credential (made by the adapter itself through a stubbed data key)
    kms = unreachable["kms"]
    cipher = KmsTokenCipher(kms, KEY_ID)
    data_key = bytes(range(32))
    with Stubber(kms) as stub:
        stub.add_response(
            "generate_data_key", {"KeyId": KEY_ID, "Plaintext": data_key, "CiphertextBlob": b"wrapped-key"}
        )
        sealed = cipher.encrypt(b"token set", CONTEXT)

    # When KMS throttles the unwrapping, Then the cipher says "unavailable" (retry later), not "corrupt"
    with Stubber(kms) as stub:
        stub.add_client_error("decrypt", service_error_code="ThrottlingException", http_status_code=400)
        with pytest.raises(CipherUnavailable):
            cipher.decrypt(sealed, CONTEXT)

    # When KMS refuses the context (the row was copied to another user), Then it is a failed decryption
    with Stubber(kms) as stub:
        stub.add_client_error("decrypt", service_error_code="InvalidCiphertextException", http_status_code=400)
        with pytest.raises(DecryptionFailed):
            cipher.decrypt(sealed, encryption_context("acme/notes", "mallory"))


def test_a_throttled_write_is_a_storage_error_naming_the_cause(unreachable: dict[str, Any]) -> None:
    dynamodb = unreachable["dynamodb"]
    grants = DynamoGrantStore(dynamodb, "grants")
    with Stubber(dynamodb) as stub:
        stub.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(StorageError) as raised:
            grants.revoke_grant("a-grant", 1_700_000_000, "admin")
    assert "ProvisionedThroughputExceededException" in str(raised.value)

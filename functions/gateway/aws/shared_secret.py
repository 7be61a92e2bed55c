"""Secrets Manager adapter for the deployment's shared symmetric secret (cookies, session ids, refresh-token
derivation), read once per cold start by the runtime. A failed read is the secret port's error,
:class:`~gateway.secrets.SecretUnavailableError`, never a botocore one: callers answer 503 without knowing the SDK.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from gateway.secrets import SecretUnavailableError


def read_shared_secret(secretsmanager: Any, secret_id: str) -> bytes:
    """The ``SecretString`` of ``secret_id`` as bytes. Raises :class:`SecretUnavailableError` (naming the secret and
    the error code, never a value)."""
    try:
        response = secretsmanager.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code") or type(error).__name__
        raise SecretUnavailableError(f"the shared secret {secret_id} cannot be read: {code}") from None
    except BotoCoreError as error:
        raise SecretUnavailableError(f"the shared secret {secret_id} cannot be read: {type(error).__name__}") from None
    value = response.get("SecretString")
    if not isinstance(value, str) or not value:
        raise SecretUnavailableError(f"the shared secret {secret_id} has no SecretString")
    return value.encode()

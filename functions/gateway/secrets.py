"""Resolve secret references from the configuration (``SecretRef``) to their values.

A reference names where a secret lives, never the secret itself (except ``plain:``):

- ``secretsmanager:<name or ARN>`` — AWS Secrets Manager (the ``SecretString``);
- ``ssm:<parameter name>`` — an SSM parameter, decrypted (``SecureString``);
- ``env:<VARIABLE>`` — an environment variable of the function (local use; this is the one place besides the
  settings that reads the environment, because the reference asks for it explicitly);
- ``plain:<value>`` — the value written in the configuration file.

**Decision on ``plain:``**: it is accepted in every stage, because refusing it would only surface as failed client
authentications at request time. In a deployed stage (``Settings.is_deployed``) it logs one warning per reference
(naming the reference kind, never the value): a value in the configuration file ships inside the function package,
readable by anyone who may download the function's code.

AWS values are read through Powertools Parameters (imported on first use, so a function that never resolves an AWS
secret never imports it) and cached in the container for ``max_age_seconds`` (default 300 s): a rotated secret is
picked up within that time. Errors never include a value.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger("gateway.secrets")

DEFAULT_MAX_AGE_SECONDS = 300
KINDS = ("secretsmanager", "ssm", "env", "plain")

ClientFactory = Callable[[], Any]


class SecretUnavailableError(Exception):
    """A secret reference could not be resolved. The message names the reference (never a ``plain:`` value)."""


def describe_ref(ref: str) -> str:
    """A loggable name for a reference: ``plain:`` values are hidden."""
    kind, _, _ = ref.partition(":")
    return "plain:<hidden>" if kind == "plain" else ref


class SecretResolver:
    """Resolves :data:`gateway.config.SecretRef` strings. Build once per container and reuse (it caches)."""

    def __init__(
        self,
        *,
        deployed: bool = False,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        secretsmanager_client: ClientFactory | None = None,
        ssm_client: ClientFactory | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.deployed = deployed
        self.max_age_seconds = max_age_seconds
        self._secretsmanager_client = secretsmanager_client
        self._ssm_client = ssm_client
        self._environ = environ
        self._providers: dict[str, Any] = {}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def resolve(self, ref: str) -> str:
        """The secret's value. Raises :class:`SecretUnavailableError` when it is missing or cannot be read."""
        kind, separator, name = ref.partition(":")
        if not separator or not name or kind not in KINDS:
            raise SecretUnavailableError(
                f"{describe_ref(ref)!r} is not a secret reference: use one of "
                "'secretsmanager:<name>', 'ssm:<name>', 'env:<VARIABLE>', 'plain:<value>'"
            )
        if kind == "plain":
            self._warn_plain_once(ref)
            return name
        if kind == "env":
            environ = os.environ if self._environ is None else self._environ
            value = environ.get(name)
            if not value:
                raise SecretUnavailableError(f"environment variable {name!r} named by secret reference is not set")
            return value
        return self._from_aws(kind, name, ref)

    def _warn_plain_once(self, ref: str) -> None:
        if self.deployed and ref not in self._warned:
            self._warned.add(ref)
            logger.warning(
                "a 'plain:' secret reference is used in a deployed stage; move the value to Secrets Manager or SSM"
            )

    def _from_aws(self, kind: str, name: str, ref: str) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        provider = self._provider(kind)
        try:
            if kind == "ssm":
                value = provider.get(name, decrypt=True, max_age=self.max_age_seconds)
            else:
                value = provider.get(name, max_age=self.max_age_seconds)
        except (GetParameterError, TransformParameterError) as error:
            # Powertools wraps the AWS error; its text names the parameter and the AWS error code, not a value.
            raise SecretUnavailableError(f"secret {ref!r} could not be read: {_error_code(error)}") from None
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise SecretUnavailableError(f"secret {ref!r} is binary, not text") from None
        if not isinstance(value, str) or not value:
            raise SecretUnavailableError(f"secret {ref!r} is empty")
        return value

    def _provider(self, kind: str) -> Any:
        with self._lock:
            provider = self._providers.get(kind)
            if provider is None:
                from aws_lambda_powertools.utilities import parameters

                if kind == "ssm":
                    client = self._ssm_client() if self._ssm_client else None
                    provider = parameters.SSMProvider(boto3_client=client)
                else:
                    client = self._secretsmanager_client() if self._secretsmanager_client else None
                    provider = parameters.SecretsProvider(boto3_client=client)
                self._providers[kind] = provider
            return provider


def _error_code(error: Exception) -> str:
    cause = error.__cause__ or error.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(cause or error).__name__

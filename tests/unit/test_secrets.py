"""Secret references resolve to values from the environment, the configuration, SSM and Secrets Manager."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gateway.secrets import SecretResolver, SecretUnavailableError


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield {
            "secretsmanager": boto3.client("secretsmanager", region_name="us-east-1"),
            "ssm": boto3.client("ssm", region_name="us-east-1"),
        }


def resolver(aws: dict[str, Any], **options: Any) -> SecretResolver:
    return SecretResolver(secretsmanager_client=lambda: aws["secretsmanager"], ssm_client=lambda: aws["ssm"], **options)


def test_secretsmanager_and_ssm_values_are_read(aws: dict[str, Any]) -> None:
    # Given a secret and an encrypted parameter
    aws["secretsmanager"].create_secret(Name="clients/cli", SecretString="s3cret-from-sm")
    aws["ssm"].put_parameter(Name="/clients/cli", Value="s3cret-from-ssm", Type="SecureString")
    secrets = resolver(aws)
    # Then both references resolve to their values
    assert secrets.resolve("secretsmanager:clients/cli") == "s3cret-from-sm"
    assert secrets.resolve("ssm:/clients/cli") == "s3cret-from-ssm"


def test_values_are_cached_for_max_age(aws: dict[str, Any]) -> None:
    aws["secretsmanager"].create_secret(Name="rotating", SecretString="first")
    secrets = resolver(aws, max_age_seconds=300)
    assert secrets.resolve("secretsmanager:rotating") == "first"
    aws["secretsmanager"].put_secret_value(SecretId="rotating", SecretString="second")
    assert secrets.resolve("secretsmanager:rotating") == "first"
    fresh = resolver(aws, max_age_seconds=0)
    assert fresh.resolve("secretsmanager:rotating") == "second"


def test_missing_aws_secret_is_a_clear_error(aws: dict[str, Any]) -> None:
    with pytest.raises(SecretUnavailableError, match="secretsmanager:nope") as raised:
        resolver(aws).resolve("secretsmanager:nope")
    assert "ResourceNotFoundException" in str(raised.value)
    with pytest.raises(SecretUnavailableError, match="ssm:/nope"):
        resolver(aws).resolve("ssm:/nope")


def test_env_reference_reads_the_named_variable() -> None:
    secrets = SecretResolver(environ={"CLI_SECRET": "from-env"})
    assert secrets.resolve("env:CLI_SECRET") == "from-env"
    with pytest.raises(SecretUnavailableError, match="MISSING"):
        secrets.resolve("env:MISSING")


def test_plain_values_warn_once_in_a_deployed_stage_without_the_value(caplog: pytest.LogCaptureFixture) -> None:
    # Given a deployed stage
    secrets = SecretResolver(deployed=True)
    # When a plain: reference is resolved twice
    with caplog.at_level(logging.WARNING, logger="gateway.secrets"):
        assert secrets.resolve("plain:hunter2") == "hunter2"
        assert secrets.resolve("plain:hunter2") == "hunter2"
    # Then one warning is logged, and it does not contain the value
    assert len(caplog.records) == 1
    assert "hunter2" not in caplog.text


def test_plain_values_are_silent_locally(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.secrets"):
        assert SecretResolver(deployed=False).resolve("plain:local") == "local"
    assert caplog.records == []


@pytest.mark.parametrize("ref", ["nope", "vault:x", "env:", "plain:"])
def test_malformed_references_are_refused_without_echoing_a_value(ref: str) -> None:
    with pytest.raises(SecretUnavailableError, match="not a secret reference") as raised:
        SecretResolver().resolve(ref)
    if ref.startswith("plain:"):
        assert "plain:<hidden>" in str(raised.value)

"""Static upstream headers read from Secrets Manager and SSM (moto over HTTP), through the provider the proxy
wires: values reach the upstream, are served from the warm cache afterwards, and are re-read after a rotation when
the upstream answers 401."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import boto3

from gateway.config import parse_config
from gateway.routes import RouteTable
from gateway.secrets import SecretResolver
from gateway.upstream.static_headers import StaticHeadersProvider
from tests.conftest import LocalAwsStack
from tests.support.runtime import example_config_data


def test_secret_and_parameter_values_become_headers_and_rotate(local_aws: LocalAwsStack) -> None:
    # Given an API key in Secrets Manager and a tenant id in SSM Parameter Store
    options: dict[str, Any] = {
        "endpoint_url": local_aws.endpoint_url,
        "region_name": "us-east-1",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
    }
    session = boto3.session.Session()
    sm, ssm = session.client("secretsmanager", **options), session.client("ssm", **options)
    name = f"upstreams/key-{secrets.token_hex(4)}"
    sm.create_secret(Name=name, SecretString="key-v1")
    ssm.put_parameter(Name=f"/{name}/tenant", Value="tenant-7", Type="SecureString")
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["auth"] = {
        "type": "headers",
        "headers": {"X-Api-Key": f"secretsmanager:{name}", "X-Tenant": f"ssm:/{name}/tenant"},
    }
    route = RouteTable(parse_config(data), "https://gw.example.com").get("demo", "echo")
    assert route is not None
    calls: list[str] = []
    sm.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))

    def make_resolver(max_age_seconds: int) -> SecretResolver:
        return SecretResolver(max_age_seconds=max_age_seconds, secretsmanager_client=lambda: sm, ssm_client=lambda: ssm)

    provider = StaticHeadersProvider(make_resolver)

    # When the proxy asks for the headers twice, then again after a rotation and an upstream 401
    first = asyncio.run(provider.headers(route, "alice"))
    cached = asyncio.run(provider.headers(route, "bob"))
    sm.put_secret_value(SecretId=name, SecretString="key-v2")
    stale = asyncio.run(provider.headers(route, "alice"))
    renewed = asyncio.run(provider.after_unauthorized(route, "alice"))

    # Then the values come from the stores, the warm cache spares the second read, and the 401 re-reads them
    assert first == {"X-Api-Key": "key-v1", "X-Tenant": "tenant-7"}
    assert cached == first and stale == first
    assert renewed == {"X-Api-Key": "key-v2", "X-Tenant": "tenant-7"}
    assert calls.count("GetSecretValue") == 2

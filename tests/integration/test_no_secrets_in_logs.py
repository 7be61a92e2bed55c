"""No secret reaches a log line: a whole client flow through the functions (registration with a client secret, a code
exchanged, a refresh, tool calls, a revocation, an API key made, used and revoked, a client_credentials token),
logged at DEBUG as JSON, is scanned for every secret it used."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.admin import main
from gateway.observability import configure_logging, reset_logging
from infra.invoke import invoke
from tests.support.invoke_flows import (
    CLIENT_ID,
    form_event,
    issued_tokens,
    mcp_call,
    sample_event,
    token_exchange,
    with_default_settings,
)


@pytest.fixture
def debug_env(gateway_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The functions' environment with their log level at DEBUG (each container sets its level at its cold start),
    applied for the test; JSON log lines in this process."""
    env = with_default_settings({**gateway_env, "GATEWAY_LOG_LEVEL": "DEBUG"})
    configure_logging("gateway", "DEBUG")
    try:
        yield env
    finally:
        reset_logging()
        logging.getLogger().setLevel(logging.WARNING)
        with_default_settings(gateway_env)


def test_a_whole_flow_logs_no_token_code_or_secret(
    debug_env: dict[str, str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    gateway_env = debug_env
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []
    # a confidential client registers: its secret
    registered = invoke("register", sample_event("register-confidential-client.json"), env=gateway_env)
    assert registered["statusCode"] == 201
    secrets.append(json.loads(registered["body"])["client_secret"])
    # a code is exchanged: the code, its verifier, the tokens
    tokens, exchange = issued_tokens()
    form = exchange["body"]
    secrets += [tokens["access_token"], tokens["refresh_token"], form]
    # tools are called, the token refreshed, then revoked
    assert mcp_call(tokens["access_token"]) == 200
    refreshed = token_exchange(
        form_event(
            "token-refresh.json",
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CLIENT_ID},
        )
    )
    assert refreshed["statusCode"] == 200
    later: dict[str, Any] = json.loads(refreshed["body"])
    secrets += [later["access_token"], later["refresh_token"]]
    revoke = form_event("revoke-refresh-token.json", {"token": later["refresh_token"], "client_id": CLIENT_ID})
    assert token_exchange(revoke)["statusCode"] == 200
    assert mcp_call(later["access_token"]) == 401
    # a gateway API key is made, used in either place, and revoked
    assert main(["admin", "--json", "create-key", "--workspace", "demo", "--user", "alice", "--name", "logs",
                 "--server", "echo"], environ=gateway_env) == 0  # fmt: skip
    captured = capsys.readouterr()
    [created] = json.loads(captured.out)
    key = created["key"]
    secrets.append(key)
    assert mcp_call(key, gateway_env) == 200
    event = sample_event("proxy-tools-call.json")
    event["headers"]["x-gateway-key"] = key
    assert invoke("proxy", event, env=gateway_env)["statusCode"] == 200
    assert main(["admin", "revoke-key", created["key_id"]], environ=gateway_env) == 0
    assert mcp_call(key, gateway_env) == 401
    # a service client gets a client_credentials token with its secret and calls a tool
    service = form_event("token-refresh.json", {"grant_type": "client_credentials"})
    service["headers"]["authorization"] = "Basic " + base64.b64encode(b"demo-ci:demo-ci-secret").decode()
    issued = invoke("token", service, env=gateway_env)
    assert issued["statusCode"] == 200, issued["body"]
    service_token = json.loads(issued["body"])["access_token"]
    secrets += ["demo-ci-secret", service["headers"]["authorization"], service_token]
    assert mcp_call(service_token, gateway_env) == 200

    # Then the logs (JSON lines on stderr, and every record the process made) hold none of them
    logged = (
        captured.err
        + capsys.readouterr().err
        + "\n"
        + caplog.text
        + "\n".join(str(record.args) for record in caplog.records)
    )
    assert len(caplog.records) > 5  # the flow did log
    assert any(line.startswith("{") and "correlation_id" in line for line in logged.splitlines())
    for secret in secrets:
        assert secret and secret not in logged, f"a secret reached the logs: {secret[:12]}..."

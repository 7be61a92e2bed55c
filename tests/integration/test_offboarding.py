"""Offboarding with ``mcp-gateway admin revoke-user`` against a local stack (moto over HTTP, the functions run as
``make invoke`` runs them): ending a user's access ends all of it — the clients they authorized, their API keys
(which may never expire) and their upstream connections — and prints what it ended (issue "Fail closed", item 6)."""

from __future__ import annotations

import json
import uuid

import pytest

from gateway.admin import main
from gateway.storage.records import UpstreamToken
from infra.invoke import filler_runtime
from infra.placeholders import grant_backed_token
from tests.support.invoke_flows import mcp_call, with_default_settings


@pytest.fixture
def env(gateway_env: dict[str, str]) -> dict[str, str]:
    return with_default_settings(gateway_env)


def _user_with_every_kind_of_access(env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    """A user (new to the tables) with a grant, an API key that never expires and an upstream connection: the
    user id, the grant's access token and the key."""
    user = f"leaver-{uuid.uuid4().hex[:8]}"
    runtime = filler_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = grant_backed_token(runtime, route, subject=user)
    argv = ["admin", "--json", "create-key", "--workspace", "demo", "--user", user, "--name", "ci", "--server", "echo"]
    assert main([*argv, "--expires-in", "never"], environ=env) == 0
    key = json.loads(capsys.readouterr().out)[0]["key"]
    connection = UpstreamToken(route_key="demo/echo", subject=user, ciphertext=b"sealed", version=1,
                               access_expires_at=None, updated_at=runtime.now())  # fmt: skip
    assert runtime.upstream_tokens.put(connection, None)
    assert mcp_call(token, env) == 200 and mcp_call(key, env) == 200
    return user, token, key


def test_revoking_a_user_ends_their_grants_keys_and_connections_and_prints_them(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a user with a grant, an API key and an upstream connection
    user, token, key = _user_with_every_kind_of_access(env, capsys)

    # When an operator offboards them
    assert main(["admin", "revoke-user", "--workspace", "demo", user], environ=env) == 0
    output = capsys.readouterr().out

    # Then the token's and the key's next calls are 401, and the upstream connection is gone
    assert mcp_call(token, env) == 401
    assert mcp_call(key, env) == 401
    assert filler_runtime().upstream_tokens.get("demo/echo", user) is None

    # And the output lists each thing it ended, and sums them up
    kinds = [line.split()[0] for line in output.splitlines()[1:] if line.strip()][:3]
    assert sorted(kinds) == ["api_key", "connection", "grant"]
    assert f"ended for {user!r} in 'demo': 1 grant(s), 1 API key(s), 1 upstream connection(s)" in output
    assert key not in output


def test_offboarding_can_keep_upstream_connections_and_says_so(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a user with every kind of access
    user, token, key = _user_with_every_kind_of_access(env, capsys)

    # When an operator offboards them but keeps their upstream accounts (the alias "offboard", --json at the end)
    assert main(["admin", "offboard", "--workspace", "demo", user, "--keep-connections", "--json"], environ=env) == 0
    result = json.loads(capsys.readouterr().out)

    # Then the grant and the key are ended, the connection is kept, and the JSON says both
    assert sorted(item["kind"] for item in result["ended"]) == ["api_key", "grant"]
    assert result["kept_connections"] == ["demo/echo"] and result["failures"] == []
    assert mcp_call(token, env) == 401 and mcp_call(key, env) == 401
    assert filler_runtime().upstream_tokens.get("demo/echo", user) is not None

    # And the audit trail has the summary, as the admin's action
    assert main(["admin", "--json", "audit", "--workspace", "demo", "--user", user, "--since", "1h"], environ=env) == 0
    events = json.loads(capsys.readouterr().out)
    [summary] = [event for event in events if event["kind"] == "user.offboarded"]
    assert summary["detail"] == {"by": "admin", "grants": 1, "api_keys": 1, "connections": 0, "kept_connections": 1}

"""``make invoke`` on a sample event prints the response and nothing from the libraries, and leaves nothing behind on
the dev user's My connections page: the grant behind ``{{ACCESS_TOKEN}}``, the grant the token function makes from
``{{AUTHORIZATION_CODE}}``, an ``{{API_KEY}}`` and a ``{{PENDING_ID}}`` are revoked or deleted once the function has
answered (``KEEP=1`` keeps them); the client it registers says what it is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from infra.devserver import REPO_ROOT
from infra.invoke import discard_containers, invoke
from infra.placeholders import LOCAL_CLIENT_ID, LOCAL_SUBJECT

if TYPE_CHECKING:
    from gateway.runtime import Runtime

EVENTS = REPO_ROOT / "events"


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return event


@pytest.fixture
def functions_env(gateway_env: dict[str, str]) -> dict[str, str]:
    discard_containers()
    return gateway_env


def usable_grants(runtime: Runtime) -> set[str]:
    """What alice's My connections page would list from `make invoke`'s client."""
    now = runtime.now()
    return {
        grant.grant_id
        for grant in runtime.grants.grants_of_user("demo", LOCAL_SUBJECT)
        if grant.client_id == LOCAL_CLIENT_ID and grant.is_usable(now)
    }


def active_keys(runtime: Runtime) -> set[str]:
    return {key.key_id for key in runtime.api_keys.keys_of_user("demo", LOCAL_SUBJECT) if key.status == "active"}


@pytest.mark.parametrize(
    ("function", "event"),
    [
        ("proxy", "proxy-tools-call.json"),  # {{ACCESS_TOKEN}}: a grant made for the token
        ("token", "token-authorization-code.json"),  # the grant the token function makes from the code
        ("token", "token-refresh.json"),  # {{REFRESH_TOKEN}}: a grant made through the token service
        ("proxy", "proxy-api-key-tools-call.json"),  # {{API_KEY}}
    ],
)
def test_a_sample_event_leaves_no_grant_or_key_of_alices_behind(
    function: str, event: str, functions_env: dict[str, str], gateway_runtime: Runtime
) -> None:
    # Given alice's grants and keys before
    grants_before, keys_before = usable_grants(gateway_runtime), active_keys(gateway_runtime)

    # When a sample event is invoked as `make invoke` does
    cleaned: list[str] = []
    result = invoke(function, load(event), env=functions_env, cleaned=cleaned)

    # Then it got its answer, and what its placeholders made is gone again
    assert result["statusCode"] == 200, result.get("body")
    assert cleaned and all(line.startswith("revoked 1 ") for line in cleaned)
    assert usable_grants(gateway_runtime) == grants_before
    assert active_keys(gateway_runtime) == keys_before


def test_keep_leaves_the_grant_for_the_tokens_the_response_carries(
    functions_env: dict[str, str], gateway_runtime: Runtime
) -> None:
    before = usable_grants(gateway_runtime)

    result = invoke("token", load("token-authorization-code.json"), env=functions_env, keep=True)

    assert result["statusCode"] == 200
    added = usable_grants(gateway_runtime) - before
    assert len(added) == 1
    client = gateway_runtime.clients.get(LOCAL_CLIENT_ID, gateway_runtime.now())
    assert client is not None and client.client_name == "make invoke (local sample events)"  # shown as what it is
    for grant_id in added:  # leave the shared stack as it was
        gateway_runtime.grants.revoke_grant(grant_id, gateway_runtime.now(), "test cleanup")


def test_a_pending_sign_in_of_a_sample_event_is_deleted(functions_env: dict[str, str]) -> None:
    cleaned: list[str] = []

    result = invoke("authorize", load("login-page.json"), env=functions_env, cleaned=cleaned)

    assert result["statusCode"] == 200
    assert cleaned == ["deleted 1 pending sign-in"]


def test_make_invoke_prints_the_response_and_what_it_cleaned_up_and_no_library_chatter(tmp_path: Path) -> None:
    # Given no running `make dev` (a state file that does not exist)
    env = {**os.environ, "DEV_STATE_FILE": str(tmp_path / "state.json")}

    # When `make invoke FN=proxy EVENT=events/proxy-tools-call.json` runs
    completed = subprocess.run(
        [sys.executable, "-m", "infra.invoke", "proxy", "events/proxy-tools-call.json"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then stdout is the response, and stderr says only where it ran and what it cleaned up: no boto "Found
    # credentials in environment variables.", no endpoint discovery, no demo upstream session chatter
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["statusCode"] == 200
    assert completed.stderr.splitlines() == [
        "no running `make dev`: starting a temporary local stack",
        "cleaned up after the sample event: revoked 1 grant (KEEP=1 keeps them)",
    ]

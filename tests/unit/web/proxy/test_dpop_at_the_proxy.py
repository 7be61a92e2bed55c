"""DPoP at the MCP endpoint (RFC 9449 §4.3, §7.1): a DPoP-bound token works with ``Authorization: DPoP`` and a proof
of its key for this request, and is refused as Bearer; proofs for another URL or method, without ``ath``, of another
key, stale or replayed get 401 with a ``DPoP`` challenge (and a ``Bearer`` one where both are accepted); bearer tokens
keep working as before. A recording upstream stands for the MCP server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.storage.ports import StorageError
from gateway.web.proxy.app import create_app
from infra.placeholders import create_grant
from tests.support.jose_keys import SigningKey, dpop_proof, thumbprint
from tests.support.recording_upstream import Recorded, recording_upstream
from tests.support.runtime import BASE_URL, example_config_data, memory_runtime

MCP = "/demo/echo/mcp"
URL = f"{BASE_URL}{MCP}"
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture
def upstream() -> Iterator[tuple[str, Recorded]]:
    with recording_upstream() as running:
        yield running


def gateway_for(upstream_url: str, **workspace: Any) -> tuple[TestClient, Runtime]:
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream_url
    data["workspaces"]["demo"].update(workspace)
    runtime = memory_runtime(parse_config(data))
    return TestClient(create_app(runtime)), runtime


@pytest.fixture
def gateway(upstream: tuple[str, Recorded]) -> tuple[TestClient, Runtime]:
    return gateway_for(upstream[0])


def token_for(runtime: Runtime, key: SigningKey | None) -> str:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = create_grant(runtime, route, subject="alice", client_id="c")
    return runtime.access_tokens.issue(
        route=route, subject="alice", client_id="c", scopes=["mcp"], grant_id=grant_id,
        jkt=thumbprint(key) if key is not None else None,
    )  # fmt: skip


def call(client: TestClient, authorization: str, proof: str | None = None, method: str = "POST") -> Any:
    headers = {"Authorization": authorization, "Accept": "application/json, text/event-stream"}
    if proof is not None:
        headers["DPoP"] = proof
    if method == "POST":
        return client.post(MCP, json=PING, headers=headers)
    return client.request(method, MCP, headers=headers)


def test_a_bound_token_with_a_proof_of_its_key_reaches_the_upstream(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    key = SigningKey()
    token = token_for(runtime, key)
    for _ in range(2):  # each call with a fresh proof
        response = call(client, f"DPoP {token}", dpop_proof(key, "POST", URL, runtime.now(), access_token=token))
        assert response.status_code == 200, response.text


def refusal(response: Any) -> str:
    assert response.status_code == 401, response.text
    challenges = response.headers.get_list("www-authenticate")
    assert challenges[0].startswith('DPoP error="invalid_dpop_proof"') and 'algs="' in challenges[0]
    description: str = response.json()["error_description"]
    return description


def test_a_stolen_bound_token_used_as_bearer_is_refused(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    token = token_for(runtime, SigningKey())
    response = call(client, f"Bearer {token}")
    assert "bound to a DPoP key" in refusal(response)
    # Both schemes are accepted on this workspace, so the Bearer challenge (with the metadata pointer) is there too
    assert any(c.startswith("Bearer resource_metadata=") for c in response.headers.get_list("www-authenticate"))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda key, token, now: None, "exactly one DPoP header"),
        (
            lambda key, token, now: dpop_proof(key, "POST", f"{BASE_URL}/demo/toolbox/mcp", now, access_token=token),
            "another URL",
        ),
        (lambda key, token, now: dpop_proof(key, "GET", URL, now, access_token=token), "another method"),
        (lambda key, token, now: dpop_proof(key, "POST", URL, now), "ath does not match"),
        (lambda key, token, now: dpop_proof(key, "POST", URL, now - 3600, access_token=token), "window"),
        (lambda key, token, now: dpop_proof(SigningKey(), "POST", URL, now, access_token=token), "another key"),
    ],
    ids=["no-proof", "other-url", "other-method", "no-ath", "stale", "other-key"],
)
def test_a_bad_proof_is_refused_with_the_reason(gateway: tuple[TestClient, Runtime], make: Any, reason: str) -> None:
    client, runtime = gateway
    key = SigningKey()
    token = token_for(runtime, key)
    assert reason in refusal(call(client, f"DPoP {token}", make(key, token, runtime.now())))


def test_a_replayed_proof_is_refused(gateway: tuple[TestClient, Runtime]) -> None:
    client, runtime = gateway
    key = SigningKey()
    token = token_for(runtime, key)
    proof = dpop_proof(key, "POST", URL, runtime.now(), access_token=token)
    assert call(client, f"DPoP {token}", proof).status_code == 200
    assert "already used" in refusal(call(client, f"DPoP {token}", proof))


def test_a_bearer_token_keeps_working_and_is_refused_under_the_dpop_scheme(
    gateway: tuple[TestClient, Runtime],
) -> None:
    client, runtime = gateway
    token = token_for(runtime, None)
    assert call(client, f"Bearer {token}").status_code == 200
    key = SigningKey()
    response = call(client, f"DPoP {token}", dpop_proof(key, "POST", URL, runtime.now(), access_token=token))
    assert "not DPoP-bound" in refusal(response)


def test_a_workspace_that_requires_dpop_refuses_bearer_tokens(upstream: tuple[str, Recorded]) -> None:
    client, runtime = gateway_for(upstream[0], dpop={"required": True})
    response = call(client, f"Bearer {token_for(runtime, None)}")
    assert "requires DPoP" in refusal(response)
    assert len(response.headers.get_list("www-authenticate")) == 1  # DPoP only: bearer is not accepted here


def test_the_route_url_is_the_one_of_the_configured_base_not_the_host_header(
    gateway: tuple[TestClient, Runtime],
) -> None:
    client, runtime = gateway
    key = SigningKey()
    token = token_for(runtime, key)
    spoofed = dpop_proof(key, "POST", f"http://testserver{MCP}", runtime.now(), access_token=token)
    assert "another URL" in refusal(call(client, f"DPoP {token}", spoofed))


def test_with_the_shared_replay_store_a_replay_is_refused_by_another_container(upstream: tuple[str, Recorded]) -> None:
    # Given two containers of one deployment with GATEWAY_DPOP_REPLAY=shared (one store, as the grants table is)
    data = example_config_data()
    data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream[0]
    first = memory_runtime(parse_config(data), dpop_replay="shared")
    second = memory_runtime(parse_config(data), dpop_replay="shared")
    for name in ("single_use", "grants", "public_keys", "access_tokens"):
        second.__dict__[name] = first.__dict__[name]
    key = SigningKey()
    token = token_for(first, key)
    proof = dpop_proof(key, "POST", URL, first.now(), access_token=token)

    # When the proof is used at the first and replayed at the second
    assert call(TestClient(create_app(first)), f"DPoP {token}", proof).status_code == 200
    replay = call(TestClient(create_app(second)), f"DPoP {token}", proof)

    # Then the second refuses it
    assert "already used" in refusal(replay)


def test_a_failing_shared_replay_store_is_503_not_500(upstream: tuple[str, Recorded]) -> None:
    client, runtime = gateway_for(upstream[0])

    class Unreachable:
        def use(self, key: str, expires_at: int, now: int) -> bool:
            raise StorageError("DynamoDB write failed: ProvisionedThroughputExceededException")

    runtime.__dict__["single_use"] = Unreachable()
    runtime.__dict__["dpop_replay"] = lambda proof, now: runtime.single_use.use(proof.replay_key(), 0, now)
    key = SigningKey()
    token = token_for(runtime, key)
    response = call(client, f"DPoP {token}", dpop_proof(key, "POST", URL, runtime.now(), access_token=token))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_the_protected_resource_metadata_says_when_dpop_is_required(upstream: tuple[str, Recorded]) -> None:
    from gateway.web.metadata.app import create_app as metadata_app

    _, strict = gateway_for(upstream[0], dpop={"required": True})
    prm = TestClient(metadata_app(strict)).get("/.well-known/oauth-protected-resource/demo/echo/mcp").json()
    assert prm["dpop_bound_access_tokens_required"] is True and "ES256" in prm["dpop_signing_alg_values_supported"]

"""The proxy's hot path on a warm container, counted rather than assumed: zero KMS calls and at most one DynamoDB
read per proxied request (design brief §4), plus one conditional write per request when the per-caller rate limit
is opted into (docs/non-interactive.md), against moto over HTTP and the demo upstream, with the proxy handler
run as ``make invoke`` runs it (a simulated Lambda container). Also: with a grant-status cache opted into, revocation
bites after the cache period (tests/integration/test_revocation.py: by default it bites on the next request).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.api_keys.issuing import KeyRequest, create_key
from gateway.runtime import Runtime
from infra import placeholders
from infra.devserver import REPO_ROOT
from infra.invoke import apply_environment, discard_containers, filler_runtime, invoke, warm_runtime

REQUESTS = 30
NO_PROXY_LIMIT = {"GATEWAY_RATE_LIMIT_PROXY_PER_CALLER": "0"}
READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"})


class AwsCalls:
    """Every botocore call the runtime's clients make, by service and operation (``before-call`` hooks)."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def record(self, model: Any, **_: Any) -> None:
        self.calls[(model.service_model.service_name, model.name)] += 1

    def watch(self, *clients: Any) -> AwsCalls:
        for client in clients:
            client.meta.events.register("before-call.*.*", self.record)
        return self

    def count(self, service: str, operations: frozenset[str] | None = None) -> int:
        return sum(
            n for (name, op), n in self.calls.items() if name == service and (operations is None or op in operations)
        )


def _tools_call() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "proxy-tools-call.json").read_text())
    # a token with an active grant behind it
    return placeholders.fill(event, function="proxy", runtime=filler_runtime())


def _call(event: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    return invoke("proxy", event, env=env)


@pytest.fixture
def env_with(gateway_env: dict[str, str]) -> Iterator[Any]:
    """Apply the functions' environment with some settings changed (a fresh runtime reads them)."""
    applied: list[dict[str, str]] = []

    def apply(**settings: str) -> dict[str, str]:
        env = {**gateway_env, **settings}
        apply_environment(env)
        discard_containers()  # the next call is a cold start that reads these settings
        applied.append(env)
        return env

    yield apply
    apply_environment(gateway_env)


def test_warm_requests_make_no_kms_call_and_no_dynamodb_read_within_the_cache_period(env_with: Any) -> None:
    # Given a warm proxy (keys fetched, grant status cached) whose operator opted into a 30 s grant-status cache and
    # out of auditing tool calls, the usage rollups and the proxy's rate limit
    env = env_with(
        GATEWAY_GRANT_STATUS_CACHE_SECONDS="30",
        GATEWAY_AUDIT_TOOL_CALLS="false",
        GATEWAY_USAGE_ROLLUPS="false",
        GATEWAY_RATE_LIMIT_PROXY_PER_CALLER="0",
    )
    event = _tools_call()
    for _ in range(3):
        assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb, runtime.secretsmanager)

    # When it relays 30 tools/call requests
    statuses = [_call(event, env)["statusCode"] for _ in range(REQUESTS)]

    # Then every one reached the upstream, with no AWS call at all
    assert statuses == [200] * REQUESTS
    assert calls.count("kms") == 0
    assert calls.count("dynamodb") == 0
    assert calls.count("secretsmanager") == 0


def test_with_the_rate_limit_on_the_cached_path_makes_one_counter_write_per_request(env_with: Any) -> None:
    # Given a warm proxy with a grant-status cache, no tool-call audit or rollups, and the proxy's opt-in rate limit on
    env = env_with(
        GATEWAY_GRANT_STATUS_CACHE_SECONDS="30",
        GATEWAY_AUDIT_TOOL_CALLS="false",
        GATEWAY_USAGE_ROLLUPS="false",
        GATEWAY_RATE_LIMIT_PROXY_PER_CALLER="600",
    )
    event = _tools_call()
    for _ in range(3):
        assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb, runtime.secretsmanager)

    # When it relays 30 tools/call requests
    statuses = [_call(event, env)["statusCode"] for _ in range(REQUESTS)]

    # Then each made exactly one DynamoDB call, the rate-limit counter's conditional UpdateItem, and no read
    assert statuses == [200] * REQUESTS
    assert calls.count("kms") == 0
    assert calls.count("dynamodb", frozenset({"UpdateItem"})) == REQUESTS
    assert calls.count("dynamodb") == REQUESTS


def test_by_default_a_tool_call_makes_one_read_one_audit_write_two_rollup_writes_and_no_kms_call(env_with: Any) -> None:
    # Given a warm proxy with the defaults: no grant-status cache, tool calls audited and counted
    env = env_with()
    event = _tools_call()
    assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    now = runtime.now()
    before = len(runtime.audit_log.events("demo", since=now - 3600, until=now + 3600, limit=10_000))
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb, runtime.secretsmanager)

    # When it relays 30 tools/call requests
    statuses = [_call(event, env)["statusCode"] for _ in range(REQUESTS)]

    # Then each read the grant once, wrote its audit event once and counted itself into the usage rollups (a tool's
    # hour and a caller's day: two UpdateItems; no rate-limit counter: an opt-in), and nothing called KMS
    assert statuses == [200] * REQUESTS
    assert calls.count("kms") == 0
    assert calls.count("dynamodb", READS) == REQUESTS
    assert calls.count("dynamodb", frozenset({"UpdateItem"})) == 2 * REQUESTS
    assert calls.count("dynamodb", frozenset({"PutItem"})) == REQUESTS
    assert calls.count("dynamodb") == 4 * REQUESTS
    calls.calls.clear()
    events = runtime.audit_log.events("demo", since=now - 3600, until=now + 3600, limit=10_000)
    assert len(events) - before == REQUESTS
    assert {(event.kind, event.detail["tool"], event.detail["outcome"]) for event in events[:REQUESTS]} == {
        ("tool.called", "echo", "ok")
    }


def test_with_no_cache_each_request_reads_the_grant_once_and_never_calls_kms(env_with: Any) -> None:
    env = env_with(
        GATEWAY_GRANT_STATUS_CACHE_SECONDS="0",
        GATEWAY_AUDIT_TOOL_CALLS="false",
        GATEWAY_USAGE_ROLLUPS="false",
        GATEWAY_RATE_LIMIT_PROXY_PER_CALLER="0",
    )
    event = _tools_call()
    assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb, runtime.secretsmanager)

    statuses = [_call(event, env)["statusCode"] for _ in range(REQUESTS)]

    assert statuses == [200] * REQUESTS
    assert calls.count("kms") == 0
    assert calls.count("dynamodb", READS) == REQUESTS  # exactly one read per request: the grant's status
    assert calls.count("dynamodb") == REQUESTS


def test_with_an_api_key_each_request_reads_the_key_once_and_never_calls_kms(
    env_with: Any, gateway_runtime: Runtime
) -> None:
    # Given a warm proxy with no cache, no tool-call audit or rollups, no proxy rate limit, and a key for demo/echo
    env = env_with(
        GATEWAY_GRANT_STATUS_CACHE_SECONDS="0",
        GATEWAY_AUDIT_TOOL_CALLS="false",
        GATEWAY_USAGE_ROLLUPS="false",
        GATEWAY_RATE_LIMIT_PROXY_PER_CALLER="0",
    )
    request = KeyRequest(workspace="demo", user_id="alice", name="hot path", servers=("echo",))
    _, key = create_key(
        gateway_runtime.api_keys, gateway_runtime.audit, gateway_runtime.config, request, int(time.time())
    )
    event = _tools_call()
    del event["headers"]["authorization"]
    event["headers"]["x-gateway-key"] = key
    assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb, runtime.secretsmanager)

    # When it relays 30 tools/call requests with the key
    statuses = [_call(event, env)["statusCode"] for _ in range(REQUESTS)]

    # Then each read the key's record once (a GetItem) and nothing else
    assert statuses == [200] * REQUESTS
    assert calls.count("kms") == 0
    assert calls.count("dynamodb", frozenset({"GetItem"})) == REQUESTS
    assert calls.count("dynamodb") == REQUESTS


def test_revocation_bites_after_the_cache_period(env_with: Any) -> None:
    # Given a warm proxy whose grant-status cache lasts one second
    env = env_with(GATEWAY_GRANT_STATUS_CACHE_SECONDS="1")
    event = _tools_call()
    assert _call(event, env)["statusCode"] == 200
    runtime = warm_runtime("proxy")
    calls = AwsCalls().watch(runtime.kms, runtime.dynamodb)
    token = event["headers"]["authorization"].removeprefix("Bearer ")
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    grant_id = runtime.access_tokens.verify(token, route=route).grant_id

    # When the grant is revoked, and requests keep coming for two cache periods
    revoked_at = time.monotonic()
    runtime.grants.revoke_grant(grant_id, runtime.now(), "test")
    results: list[tuple[float, int]] = []
    while time.monotonic() - revoked_at < 2.0:
        started = time.monotonic() - revoked_at
        results.append((started, _call(event, env)["statusCode"]))
        time.sleep(0.05)

    # Then a request may still pass only within the cache period (the cached "active" was read before the
    # revocation, so it ages within 1 s of it); every request started after that is refused with 401
    assert all(status in (200, 401) for _, status in results)
    assert all(status == 401 for started, status in results if started > 1.0), results
    assert results[-1][1] == 401
    assert [status for _, status in results] == sorted(status for _, status in results)  # no 200 after a 401
    assert calls.count("kms") == 0
    reads = calls.count("dynamodb", READS)
    assert 1 <= reads <= 2  # one per cache expiry, then none: a revoked grant is remembered (the revoke is a write)
    # And a revoked grant is remembered: later requests make no read
    assert _call(event, env)["statusCode"] == 401
    assert calls.count("dynamodb", READS) == reads

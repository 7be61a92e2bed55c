"""The storage ports' contracts, run against both adapters: in-memory, and DynamoDB over HTTP (moto's server with
the tables of template.yaml). Concurrency guarantees are exercised with real parallel requests."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from gateway.aws.dynamodb_audit import DynamoAuditLog, DynamoUsageLog
from gateway.aws.dynamodb_direct import DirectDynamoDB, direct_client
from gateway.aws.dynamodb_grants import DynamoGrantStore
from gateway.aws.dynamodb_store import (
    DynamoApiKeyStore,
    DynamoClientStore,
    DynamoRateLimiter,
    DynamoSingleUseStore,
    DynamoUpstreamTokenStore,
)
from gateway.storage.ports import (
    AlreadyExists,
    ApiKeyStore,
    AuditLog,
    ClientStore,
    CodeNotRedeemable,
    GrantStore,
    RateLimiter,
    SingleUseStore,
    UpstreamTokenStore,
    UsageLog,
    listing_position,
)
from gateway.storage.records import (
    ApiKey,
    AuditEvent,
    AuthorizationCode,
    Consent,
    Grant,
    PendingAuthorization,
    RegisteredClient,
    ToolCall,
    UpstreamToken,
)
from infra.local_aws import local_environment, provision, start_local_aws
from infra.memory.stores import (
    MemoryApiKeyStore,
    MemoryAuditLog,
    MemoryClientStore,
    MemoryGrantStore,
    MemoryRateLimiter,
    MemorySingleUseStore,
    MemoryUpstreamTokenStore,
    MemoryUsageLog,
)
from infra.template import load_template

NOW = 1_800_000_000


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[tuple[Any, dict[str, str], Any]]:
    with start_local_aws() as aws:
        refs = provision(aws.endpoint_url, load_template())
        env = local_environment(aws.endpoint_url)
        session = boto3.session.Session(
            region_name=env["AWS_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        client = session.client("dynamodb", endpoint_url=aws.endpoint_url)
        yield client, refs, session._session  # the botocore session under boto3's (credentials, CA bundle)


def _dynamodb(request: pytest.FixtureRequest) -> tuple[Any, dict[str, str]]:
    """The low-level client of a DynamoDB-backed parameter: botocore's, or the direct one the functions use
    (gateway.aws.dynamodb_direct: its per-request operations signed and sent without botocore), same tables."""
    client, refs, session = request.getfixturevalue("dynamodb")
    if request.param == "dynamodb-direct":
        direct = direct_client(client, session)
        assert isinstance(direct, DirectDynamoDB)
        return direct, refs
    return client, refs


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def stores(request: pytest.FixtureRequest) -> tuple[ClientStore, GrantStore, UpstreamTokenStore]:
    if request.param == "memory":
        return MemoryClientStore(), MemoryGrantStore(), MemoryUpstreamTokenStore()
    client, refs = _dynamodb(request)
    return (
        DynamoClientStore(client, refs["ClientsTable"]),
        DynamoGrantStore(client, refs["GrantsTable"]),
        DynamoUpstreamTokenStore(client, refs["UpstreamTokensTable"]),
    )


def _client(client_id: str, **changes: Any) -> RegisteredClient:
    client = RegisteredClient(
        client_id=client_id, route_key="demo/echo", client_name="Claude Code",
        redirect_uris=("http://127.0.0.1/callback",), token_endpoint_auth_method="none",
        client_secret_hash=None, created_at=NOW, last_used_at=NOW, expires_at=NOW + 3600,
    )  # fmt: skip
    return dataclasses.replace(client, **changes)


def _code(code_hash: str, grant_id: str, **changes: Any) -> AuthorizationCode:
    code = AuthorizationCode(
        code_hash=code_hash, grant_id=grant_id, route_key="demo/echo", client_id="c1",
        redirect_uri="http://127.0.0.1/callback", code_challenge="x" * 43, scopes=("mcp",),
        resource="https://gw.example.com/demo/echo/mcp", user_id="alice", user_name="Alice",
        user_groups=("engineering",), created_at=NOW, expires_at=NOW + 300,
    )  # fmt: skip
    return dataclasses.replace(code, **changes)


def _grant(grant_id: str, **changes: Any) -> Grant:
    grant = Grant(
        grant_id=grant_id, route_key="demo/echo", workspace="demo", user_id="alice", user_name="Alice",
        user_groups=("engineering",), client_id="c1", scopes=("mcp", "offline_access"), created_at=NOW,
        absolute_expires_at=NOW + 86400, idle_expires_at=NOW + 3600, refresh_salt="salt",
    )  # fmt: skip
    return dataclasses.replace(grant, **changes)


def _consent(grant_id: str) -> Consent:
    return Consent(route_key="demo/echo", client_id="c1", user_id="alice", scopes=("mcp",), grant_id=grant_id,
                   created_at=NOW)  # fmt: skip


def _unique(prefix: str, request: pytest.FixtureRequest) -> str:
    return f"{prefix}-{request.node.callspec.id}-{request.node.name}"


def test_clients_are_created_once_and_expire(stores: Any, request: pytest.FixtureRequest) -> None:
    clients: ClientStore = stores[0]
    client_id = _unique("client", request)
    clients.create(_client(client_id))
    with pytest.raises(AlreadyExists):
        clients.create(_client(client_id))
    assert clients.get(client_id, NOW) == _client(client_id)
    assert clients.get(client_id, NOW + 3600) is None  # expired, although TTL has not deleted it
    clients.touch(client_id, NOW + 100, NOW + 7200)
    touched = clients.get(client_id, NOW + 3600)
    assert touched is not None
    assert touched.last_used_at == NOW + 100
    clients.touch("unknown-client", NOW, NOW)  # no error, nothing created
    assert clients.get("unknown-client", NOW) is None


def test_pending_authorizations_expire_on_read(stores: Any, request: pytest.FixtureRequest) -> None:
    grants: GrantStore = stores[1]
    pending = PendingAuthorization(
        pending_id=_unique("p", request), route_key="demo/echo", client_id="c1", client_source="dcr",
        redirect_uri="http://127.0.0.1/cb", state=None, code_challenge="x" * 43, scopes=("mcp",),
        resource="https://gw.example.com/demo/echo/mcp", created_at=NOW, expires_at=NOW + 600, csrf_token="t",
    )  # fmt: skip
    grants.put_pending(pending)
    assert grants.get_pending(pending.pending_id, NOW) == pending
    assert grants.get_pending(pending.pending_id, NOW + 600) is None
    signed_in = dataclasses.replace(pending, user_id="alice", user_groups=("a", "b"))
    grants.put_pending(signed_in)
    assert grants.get_pending(pending.pending_id, NOW) == signed_in
    grants.delete_pending(pending.pending_id)
    grants.delete_pending(pending.pending_id)
    assert grants.get_pending(pending.pending_id, NOW) is None


def test_a_pending_authorization_is_taken_once_under_concurrency(stores: Any, request: pytest.FixtureRequest) -> None:
    # Given a pending authorization (a consent form about to be submitted twice, or from two tabs)
    grants: GrantStore = stores[1]
    pending = PendingAuthorization(
        pending_id=_unique("take", request), route_key="demo/echo", client_id="c1", client_source="dcr",
        redirect_uri="http://127.0.0.1/cb", state=None, code_challenge="x" * 43, scopes=("mcp",),
        resource="https://gw.example.com/demo/echo/mcp", created_at=NOW, expires_at=NOW + 600, csrf_token="t",
        user_id="alice", signed_in_at=NOW,
    )  # fmt: skip
    grants.put_pending(pending)
    # When eight requests take it at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        taken = list(pool.map(lambda _: grants.take_pending(pending.pending_id, NOW + 1), range(8)))
    # Then exactly one gets it, as it was, and it is gone
    assert [result for result in taken if result is not None] == [pending]
    assert grants.get_pending(pending.pending_id, NOW + 1) is None
    # And an expired one is never taken
    grants.put_pending(pending)
    assert grants.take_pending(pending.pending_id, NOW + 600) is None
    assert grants.take_pending("never-stored", NOW) is None


def test_a_code_is_redeemed_once_creating_grant_and_consent(stores: Any, request: pytest.FixtureRequest) -> None:
    grants: GrantStore = stores[1]
    code_hash, grant_id = _unique("code", request), _unique("grant", request)
    grants.put_code(_code(code_hash, grant_id))
    grants.redeem_code(code_hash, _grant(grant_id), _consent(grant_id), NOW + 1)
    assert grants.get_grant(grant_id) == _grant(grant_id)
    consent = grants.get_consent("demo/echo", "c1", "alice")
    assert consent is not None
    assert consent.grant_id == grant_id
    redeemed = grants.get_code(code_hash, NOW + 2)
    assert redeemed is not None
    assert redeemed.redeemed_at == NOW + 1
    with pytest.raises(CodeNotRedeemable) as replay:
        grants.redeem_code(code_hash, _grant(grant_id + "-2"), None, NOW + 2)
    assert replay.value.replayed is not None
    assert replay.value.replayed.grant_id == grant_id
    assert grants.get_grant(grant_id + "-2") is None  # nothing half-written


def test_expired_and_unknown_codes_are_not_redeemable(stores: Any, request: pytest.FixtureRequest) -> None:
    grants: GrantStore = stores[1]
    code_hash, grant_id = _unique("code", request), _unique("grant", request)
    grants.put_code(_code(code_hash, grant_id))
    with pytest.raises(CodeNotRedeemable) as expired:
        grants.redeem_code(code_hash, _grant(grant_id), None, NOW + 300)
    assert expired.value.replayed is None
    assert grants.get_grant(grant_id) is None
    with pytest.raises(CodeNotRedeemable):
        grants.redeem_code("unknown", _grant(grant_id), None, NOW)


def test_parallel_redemptions_of_one_code_succeed_exactly_once(stores: Any, request: pytest.FixtureRequest) -> None:
    grants: GrantStore = stores[1]
    code_hash, grant_id = _unique("code", request), _unique("grant", request)
    grants.put_code(_code(code_hash, grant_id))

    def redeem(attempt: int) -> bool:
        try:
            grants.redeem_code(code_hash, _grant(f"{grant_id}-{attempt}"), None, NOW + 1)
        except CodeNotRedeemable:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(redeem, range(8)))
    assert outcomes.count(True) == 1


def test_refresh_generations_advance_conditionally(stores: Any, request: pytest.FixtureRequest) -> None:
    grants: GrantStore = stores[1]
    code_hash, grant_id = _unique("code", request), _unique("grant", request)
    grants.put_code(_code(code_hash, grant_id))
    grants.redeem_code(code_hash, _grant(grant_id), _consent(grant_id), NOW)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: grants.advance_refresh(grant_id, 0, NOW + 5, NOW + 9000), range(8)))
    assert outcomes.count(True) == 1
    grant = grants.get_grant(grant_id)
    assert grant is not None
    assert (grant.refresh_generation, grant.rotated_at, grant.idle_expires_at) == (1, NOW + 5, NOW + 9000)

    grants.revoke_grant(grant_id, NOW + 10, "refresh token reuse")
    grants.revoke_grant(grant_id, NOW + 11, "again")  # idempotent: the first reason stays
    revoked = grants.get_grant(grant_id)
    assert revoked is not None
    assert (revoked.status, revoked.revoked_at, revoked.revoked_reason) == ("revoked", NOW + 10, "refresh token reuse")
    assert not grants.advance_refresh(grant_id, 1, NOW + 20, NOW + 9000)
    assert grants.get_consent("demo/echo", "c1", "alice") is None
    assert grant_id in [g.grant_id for g in grants.grants_of_user("demo", "alice")]


def test_upstream_tokens_use_versions_and_a_single_refresh_lease(stores: Any, request: pytest.FixtureRequest) -> None:
    tokens: UpstreamTokenStore = stores[2]
    subject = _unique("user", request)
    token = UpstreamToken(route_key="demo/echo", subject=subject, ciphertext=b"\x00secret", version=1,
                          access_expires_at=NOW + 60, updated_at=NOW)  # fmt: skip
    assert tokens.put(token, None)
    assert not tokens.put(token, None)  # already exists
    assert tokens.get("demo/echo", subject) == token

    with ThreadPoolExecutor(max_workers=6) as pool:
        leases = list(pool.map(lambda i: tokens.acquire_lease("demo/echo", subject, f"c{i}", NOW, NOW + 30), range(6)))
    assert leases.count(True) == 1
    winner = f"c{leases.index(True)}"
    assert tokens.acquire_lease("demo/echo", subject, winner, NOW + 1, NOW + 30)  # re-entrant for its owner
    assert tokens.acquire_lease("demo/echo", subject, "late", NOW + 31, NOW + 60)  # an expired lease is taken over

    refreshed = dataclasses.replace(token, ciphertext=b"new", version=2, updated_at=NOW + 31)
    assert not tokens.put(refreshed, expected_version=7)
    assert tokens.put(refreshed, expected_version=1)
    stored = tokens.get("demo/echo", subject)
    assert stored is not None
    assert (stored.ciphertext, stored.version, stored.lease_owner) == (b"new", 2, None)
    tokens.delete("demo/echo", subject)
    assert tokens.get("demo/echo", subject) is None


def test_the_routes_where_a_subject_has_credentials_are_found_per_workspace(
    stores: Any, request: pytest.FixtureRequest
) -> None:
    # Given credentials of one subject on two routes of a workspace (one an upstream of a virtual route), on a route
    # of another workspace, and another subject's
    tokens: UpstreamTokenStore = stores[2]
    subject, other = _unique("leaver", request), _unique("stayer", request)
    workspace = _unique("ws", request)
    for route_key, who in [
        (f"{workspace}/echo", subject), (f"{workspace}/toolbox/github", subject), (f"{workspace}x/echo", subject),
        (f"{workspace}/echo", other),
    ]:  # fmt: skip
        token = UpstreamToken(route_key=route_key, subject=who, ciphertext=b"\x00", version=1,
                              access_expires_at=None, updated_at=NOW)  # fmt: skip
        assert tokens.put(token, None)

    # Then exactly the subject's routes of that workspace are found
    assert tokens.routes_of_subject(workspace, subject) == [f"{workspace}/echo", f"{workspace}/toolbox/github"]
    tokens.delete(f"{workspace}/echo", subject)
    assert tokens.routes_of_subject(workspace, subject) == [f"{workspace}/toolbox/github"]
    assert tokens.routes_of_subject(workspace, "nobody") == []


# --- audit trail ----------------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def audit_log(request: pytest.FixtureRequest) -> AuditLog:
    if request.param == "memory":
        return MemoryAuditLog()
    client, refs = _dynamodb(request)
    return DynamoAuditLog(client, refs["AuditTable"])


def _event(event_id: str, at: int, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "event_id": event_id, "at": at, "kind": "tool.called", "workspace": "contract", "expires_at": at + 86400,
        "route_key": "contract/echo", "user_id": "alice", "client_id": "c1", "detail": {"tool": "echo", "ok": True},
    }  # fmt: skip
    values.update(changes)
    return AuditEvent(**values)


def test_audit_events_come_back_newest_first_within_the_range_across_days(audit_log: AuditLog) -> None:
    # Given events over three days (each day is a partition in DynamoDB)
    day = 86400
    for n, at in enumerate([NOW - 2 * day, NOW - day - 5, NOW - 10, NOW - 5, NOW]):
        audit_log.append(_event(f"e{n}", at))
    audit_log.append(_event("e1", NOW - day - 5))  # a repeated append changes nothing

    # When the range covers the last two days (the upper bound is exclusive)
    found = audit_log.events("contract", since=NOW - day - 10, until=NOW)

    # Then they come newest first, within the range, with everything they were written with
    assert [event.event_id for event in found] == ["e3", "e2", "e1"]
    assert found[0] == _event("e3", NOW - 5)
    assert audit_log.events("contract", since=NOW - 3 * day, until=NOW + 1, limit=2)[-1].event_id == "e3"


def test_audit_events_are_read_page_after_page_across_days(audit_log: AuditLog) -> None:
    # Given seven events over three days, two of them in the same second
    day = 86400
    times = [NOW - 2 * day, NOW - day - 5, NOW - day - 5, NOW - 10, NOW - 5, NOW - 5, NOW]
    for n, at in enumerate(times):
        audit_log.append(_event(f"p{n}", at, workspace="paged"))

    # When they are read three at a time, each page starting before the last event of the previous one
    pages: list[list[str]] = []
    before = None
    while True:
        page = audit_log.events("paged", since=NOW - 3 * day, until=NOW + 1, limit=3, before=before)
        pages.append([event.event_id for event in page])
        if len(page) < 3:
            break
        before = page[-1].position

    # Then every event comes once, newest first, the two of one second apart in their order too
    assert pages == [["p6", "p5", "p4"], ["p3", "p2", "p1"], ["p0"]]
    filtered = audit_log.events(
        "paged", since=NOW - 3 * day, until=NOW + 1, user_id="alice", before=f"{NOW - 5:012d}#p5"
    )
    assert [event.event_id for event in filtered] == ["p4", "p3", "p2", "p1", "p0"]


def test_audit_events_are_filtered_by_route_user_and_client(audit_log: AuditLog) -> None:
    audit_log.append(_event("a", NOW - 3, user_id="alice", client_id="c1"))
    audit_log.append(_event("b", NOW - 2, user_id="bob", client_id="c1", kind="token.issued", detail={}))
    audit_log.append(_event("c", NOW - 1, user_id="bob", client_id="c2", route_key="contract/other"))
    since, until = NOW - 10, NOW

    assert [e.event_id for e in audit_log.events("contract", since=since, until=until, user_id="bob")] == ["c", "b"]
    both = audit_log.events("contract", since=since, until=until, client_id="c1", user_id="bob")
    assert [e.event_id for e in both] == ["b"]
    other = audit_log.events("contract", since=since, until=until, route_key="contract/other")
    assert [e.event_id for e in other] == ["c"]
    assert audit_log.events("elsewhere", since=since, until=until) == []


def test_grants_of_a_client_are_found_in_any_status(stores: tuple[ClientStore, GrantStore, UpstreamTokenStore]) -> None:
    _, grants, _ = stores
    tag = uuid.uuid4().hex  # the DynamoDB parameters share one table; id() of a freed store comes back
    wanted = "client-of-grants-" + tag
    for n, client in enumerate([wanted, wanted, "someone-else"]):
        grant = _grant(f"grant-cg-{n}-{tag}", client_id=client)
        code = _code(f"code-cg-{n}-{tag}", grant.grant_id, client_id=client)
        grants.put_code(code)
        grants.redeem_code(code.code_hash, grant, None, NOW)
    grants.revoke_grant(f"grant-cg-1-{tag}", NOW, "test")

    found = sorted((grant.grant_id, grant.status) for grant in grants.grants_of_client(wanted))

    assert found == [(f"grant-cg-0-{tag}", "active"), (f"grant-cg-1-{tag}", "revoked")]


# --- API keys and rate limits ----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def api_keys(request: pytest.FixtureRequest) -> ApiKeyStore:
    if request.param == "memory":
        return MemoryApiKeyStore()
    client, refs = _dynamodb(request)
    return DynamoApiKeyStore(client, refs["GrantsTable"])


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def rate_limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    client, refs = _dynamodb(request)
    return DynamoRateLimiter(client, refs["RateLimitsTable"])


def _api_key(key_id: str, **changes: Any) -> ApiKey:
    key = ApiKey(
        key_id=key_id, workspace="demo", user_id="alice", name="ci", secret_hash="ab" * 32,
        servers=("echo", "toolbox"), created_at=NOW, expires_at=NOW + 3600, tools=("echo",),
    )  # fmt: skip
    return dataclasses.replace(key, **changes)


def test_api_keys_are_created_once_read_by_id_and_revoked_idempotently(api_keys: ApiKeyStore) -> None:
    # Given a stored key
    key = _api_key(f"k{uuid.uuid4().hex[:15]}")
    api_keys.create_key(key)

    # Then it reads back whole, and its id cannot be taken again
    assert api_keys.get_key(key.key_id) == key
    with pytest.raises(AlreadyExists):
        api_keys.create_key(_api_key(key.key_id, user_id="mallory"))
    assert api_keys.get_key("unknown-key-id") is None

    # When it is revoked twice
    api_keys.revoke_key(key.key_id, NOW + 10)
    api_keys.revoke_key(key.key_id, NOW + 20)

    # Then it keeps the first revocation time, and revoking an unknown key does nothing
    revoked = api_keys.get_key(key.key_id)
    assert revoked is not None and revoked.status == "revoked" and revoked.revoked_at == NOW + 10
    api_keys.revoke_key("unknown-key-id", NOW)
    assert api_keys.get_key("unknown-key-id") is None


def test_api_keys_are_listed_by_owner_and_by_workspace(api_keys: ApiKeyStore) -> None:
    # Given keys of two users of one workspace and of another workspace
    owner = f"user-{uuid.uuid4().hex[:8]}"
    mine = [_api_key(f"m{uuid.uuid4().hex[:15]}", user_id=owner, created_at=NOW + i) for i in range(2)]
    other = _api_key(f"o{uuid.uuid4().hex[:15]}", user_id="bob")
    elsewhere = _api_key(f"e{uuid.uuid4().hex[:15]}", user_id=owner, workspace="acme")
    for key in [*mine, other, elsewhere]:
        api_keys.create_key(key)
    api_keys.revoke_key(mine[0].key_id, NOW)

    # Then the owner's keys in any status are theirs in that workspace only; the workspace lists all of its own
    assert sorted(k.key_id for k in api_keys.keys_of_user("demo", owner)) == sorted(k.key_id for k in mine)
    in_workspace = {k.key_id for k in api_keys.keys_of_workspace("demo")}
    assert {mine[0].key_id, mine[1].key_id, other.key_id} <= in_workspace
    assert elsewhere.key_id not in in_workspace


def test_a_rate_limit_bucket_admits_exactly_its_limit_under_concurrency(rate_limiter: RateLimiter) -> None:
    # Given an empty bucket of limit 5
    bucket = f"register#203.0.113.7#{uuid.uuid4().hex}"

    # When 12 requests race for it
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: rate_limiter.take(bucket, 5, NOW + 60), range(12)))

    # Then exactly 5 were counted, and the bucket stays full; another bucket is independent
    assert results.count(True) == 5
    assert rate_limiter.take(bucket, 5, NOW + 60) is False
    assert rate_limiter.take(bucket + "-next-window", 5, NOW + 120) is True


# --- what the admin console lists ------------------------------------------------------------------------------


def test_audit_events_are_found_by_kind_user_and_client_through_their_indexes(audit_log: AuditLog) -> None:
    # Given a workspace's tool calls and a few rarer events of several kinds, users and clients, over two days
    day = 86400
    ws = "indexed"
    audit_log.append(_event("i1", NOW - day, workspace=ws, kind="user.signed_in", client_id="cx", user_id="ann"))
    audit_log.append(_event("i2", NOW - day + 1, workspace=ws, client_id="cx", user_id="ann"))  # a tool call
    audit_log.append(_event("i3", NOW - 5, workspace=ws, kind="token.issued", client_id="cx", user_id="ann"))
    audit_log.append(_event("i4", NOW - 4, workspace=ws, kind="token.refreshed", client_id="cy", user_id="ben"))
    audit_log.append(_event("i5", NOW - 3, workspace=ws, client_id="cy", user_id="ben"))  # a tool call
    audit_log.append(_event("i6", NOW - 2, workspace=ws, kind="grant.revoked", user_id=None, client_id=None))
    since, until = NOW - 2 * day, NOW + 1

    def ids(**filters: Any) -> list[str]:
        return [event.event_id for event in audit_log.events(ws, since=since, until=until, **filters)]

    # Then each filter, alone or with others, finds its events, newest first, across the days
    assert ids(kinds=("token.issued", "token.refreshed")) == ["i4", "i3"]
    assert ids(kinds=("tool.called",)) == ["i5", "i2"]
    assert ids(kinds=("grant.revoked",)) == ["i6"]
    assert ids(client_id="cx") == ["i3", "i2", "i1"]  # its sign-in events and its calls, merged in time order
    assert ids(client_id="cx", kinds=("user.signed_in", "token.issued")) == ["i3", "i1"]
    assert ids(client_id="cx", kinds=("tool.called",)) == ["i2"]
    assert ids(user_id="ben") == ["i5", "i4"]
    assert ids(user_id="ann", client_id="cx", kinds=("tool.called",)) == ["i2"]
    # and pages continue below the last event of the previous page
    first = audit_log.events(ws, since=since, until=until, client_id="cx", limit=2)
    rest = audit_log.events(ws, since=since, until=until, client_id="cx", limit=2, before=first[-1].position)
    assert [e.event_id for e in first + rest] == ["i3", "i2", "i1"]


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def usage_log(request: pytest.FixtureRequest) -> UsageLog:
    if request.param == "memory":
        return MemoryUsageLog()
    client, refs = _dynamodb(request)
    return DynamoUsageLog(client, refs["AuditTable"])


def test_usage_rollups_add_up_calls_from_any_number_of_writers(usage_log: UsageLog) -> None:
    # Given calls of two tools over two hours, one failed upstream, counted concurrently
    ws = f"usage-{uuid.uuid4().hex[:12]}"  # the DynamoDB parameters share one table
    hour = NOW // 3600 * 3600
    calls = [ToolCall(ws, f"{ws}/echo", "echo", "c1", "ann", hour + n, "ok", 10.0, 8.0) for n in range(8)]
    calls.append(ToolCall(ws, f"{ws}/echo", "echo", "c1", "ben", hour + 10, "http_502", 20.0, 19.0))
    calls.append(ToolCall(ws, f"{ws}/echo", "add", "c2", "ben", hour + 3600, "ok", 3.0, 2.0))
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda c: usage_log.add_call(c, 3, 4, "upstream" if c.outcome != "ok" else None, NOW + 86400), calls
            )
        )

    # Then the tool hours and the callers' days hold exactly the sums
    tools = {
        (r.hour, r.tool): r for r in usage_log.tool_rollups(ws, since_hour=hour // 3600, until_hour=hour // 3600 + 2)
    }
    echo = tools[(hour // 3600, "echo")]
    assert echo.calls == 9 and echo.errors == {"upstream": 1}
    assert echo.gateway_histogram == {3: 9} and echo.upstream_histogram == {4: 9}
    assert round(echo.upstream_ms, 3) == 8 * 8.0 + 19.0
    assert tools[(hour // 3600 + 1, "add")].calls == 1
    assert usage_log.tool_rollups(ws, since_hour=hour // 3600 + 1, until_hour=hour // 3600 + 2)[0].tool == "add"
    callers = {
        (r.client_id, r.user_id): r
        for r in usage_log.caller_rollups(ws, since_day=NOW // 86400, until_day=NOW // 86400 + 1)
    }
    assert callers[("c1", "ann")].calls == 8 and callers[("c1", "ben")].errors == 1
    assert callers[("c1", "ben")].error_hours == {(hour // 3600) % 24: 1}

    # And read together (one query per day), the same rollups: the tool hours of the window, the callers of its days
    first = hour // 3600
    for since, until in ((first, first + 2), (first + 1, first + 2), (first, first + 1)):
        together, callers_of_days = usage_log.rollups(ws, since_hour=since, until_hour=until)
        alone = usage_log.tool_rollups(ws, since_hour=since, until_hour=until)
        hours = lambda r: (r.hour, r.tool)  # noqa: E731
        assert alone and sorted(together, key=hours) == sorted(alone, key=hours)
        days = usage_log.caller_rollups(ws, since_day=since // 24, until_day=(until - 1) // 24 + 1)
        key = lambda r: (r.day, r.client_id, r.user_id)  # noqa: E731
        assert sorted(callers_of_days, key=key) == sorted(days, key=key) and days


def test_a_workspaces_grants_keys_and_clients_are_listed_newest_first_by_page(
    stores: tuple[ClientStore, GrantStore, UpstreamTokenStore], api_keys: ApiKeyStore
) -> None:
    clients, grants, _ = stores
    run = uuid.uuid4().hex[:12]  # the DynamoDB tables are shared by every parameter of the module
    ws = f"listed{run}"
    for n in range(3):
        grant = _grant(f"grant-ls-{n}-{run}", workspace=ws, route_key=f"{ws}/echo", client_id=f"c{n % 2}",
                       created_at=NOW + n)  # fmt: skip
        grants.create_grant(grant)
        clients.create(_client(f"client-ls-{n}-{run}", route_key=f"{ws}/echo", created_at=NOW + n))
    clients.create(_client(f"client-ls-gone-{run}", route_key=f"{ws}/echo", expires_at=NOW - 1))

    page = grants.grants_of_workspace(ws, limit=2)
    assert [g.grant_id for g in page] == [f"grant-ls-2-{run}", f"grant-ls-1-{run}"]
    after = grants.grants_of_workspace(ws, limit=2, before=listing_position(page[-1].created_at, page[-1].grant_id))
    assert [g.grant_id for g in after] == [f"grant-ls-0-{run}"]
    assert [g.client_id for g in grants.grants_of_workspace(ws, client_id="c0")] == ["c0", "c0"]
    assert grants.grants_of_workspace("elsewhere") == []

    listed = [c.client_id for c in clients.clients_of_workspace(ws, NOW)]
    assert listed == [f"client-ls-{n}-{run}" for n in (2, 1, 0)]  # the expired registration is not shown

    api_keys.create_key(_api_key(f"key-ls-{run}", workspace=ws))
    assert [k.key_id for k in api_keys.keys_of_workspace(ws)] == [f"key-ls-{run}"]


@pytest.fixture(params=["memory", "dynamodb", "dynamodb-direct"])
def single_use(request: pytest.FixtureRequest) -> SingleUseStore:
    if request.param == "memory":
        return MemorySingleUseStore()
    client, refs = _dynamodb(request)
    return DynamoSingleUseStore(client, refs["GrantsTable"])


def test_a_value_is_used_once_under_concurrency_and_again_only_after_it_expired(single_use: SingleUseStore) -> None:
    # Given a jti nobody used
    key = f"client-assertion#{uuid.uuid4().hex}"

    # When 8 requests present it at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: single_use.use(key, NOW + 300, NOW), range(8)))

    # Then exactly one is let through, and later presentations within its lifetime are refused
    assert results.count(True) == 1
    assert single_use.use(key, NOW + 300, NOW + 299) is False
    # And once its record expired (TTL deletion is lazy: the item may still be there) it counts as unused
    assert single_use.use(key, NOW + 900, NOW + 300) is True
    assert single_use.use(key, NOW + 900, NOW + 301) is False
    assert single_use.use(f"{key}-other", NOW + 300, NOW) is True

"""Revocation reaches the proxy within the configured cache bound, and revoked grants stay revoked."""

from __future__ import annotations

import dataclasses

from gateway.proxy.grant_status import GrantStatusCache
from gateway.storage.records import AuthorizationCode, Grant
from infra.memory.stores import MemoryGrantStore

NOW = 1_800_000_000


class CountingGrants(MemoryGrantStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_grant(self, grant_id: str) -> Grant | None:
        self.reads += 1
        return super().get_grant(grant_id)


def _store_with_grant(**changes: object) -> CountingGrants:
    store = CountingGrants()
    code = AuthorizationCode(
        code_hash="h", grant_id="g", route_key="demo/echo", client_id="c", redirect_uri="x", code_challenge="c",
        scopes=("mcp",), resource="r", user_id="alice", user_name=None, user_groups=(), created_at=NOW,
        expires_at=NOW + 60,
    )  # fmt: skip
    grant = Grant(
        grant_id="g", route_key="demo/echo", workspace="demo", user_id="alice", user_name=None, user_groups=(),
        client_id="c", scopes=("mcp",), created_at=NOW, absolute_expires_at=NOW + 3600,
        idle_expires_at=NOW + 600, refresh_salt="s",
    )  # fmt: skip
    store.put_code(code)
    store.redeem_code("h", dataclasses.replace(grant, **changes), None, NOW)  # type: ignore[arg-type]
    return store


def test_an_active_grant_is_read_once_per_cache_period() -> None:
    store, clock = _store_with_grant(), [0.0]
    cache = GrantStatusCache(store, 30, clock=lambda: clock[0])
    assert cache.is_active("g", NOW)
    assert cache.is_active("g", NOW)
    assert store.reads == 1
    clock[0] = 31.0
    assert cache.is_active("g", NOW)
    assert store.reads == 2


def test_a_revocation_bites_after_the_cache_period_and_stays() -> None:
    store, clock = _store_with_grant(), [0.0]
    cache = GrantStatusCache(store, 30, clock=lambda: clock[0])
    assert cache.is_active("g", NOW)
    store.revoke_grant("g", NOW, "user revoked")
    assert cache.is_active("g", NOW)  # still within the documented bound
    clock[0] = 30.5
    assert not cache.is_active("g", NOW)
    reads = store.reads
    assert not cache.is_active("g", NOW)
    assert store.reads == reads  # revocation is remembered without reading again


def test_zero_means_every_request_reads_the_table() -> None:
    store = _store_with_grant()
    cache = GrantStatusCache(store, 0)
    for _ in range(3):
        assert cache.is_active("g", NOW)
    assert store.reads == 3


def test_unknown_and_expired_grants_are_inactive() -> None:
    store = _store_with_grant()
    cache = GrantStatusCache(store, 30)
    assert not cache.is_active("unknown", NOW)
    assert not cache.is_active("g", NOW + 3600)

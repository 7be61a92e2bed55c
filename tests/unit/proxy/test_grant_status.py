"""Revocation reaches the proxy within the configured cache bound, and revoked grants stay revoked."""

from __future__ import annotations

import dataclasses

from gateway.config import OAuthPolicy, parse_config
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import grant_from_code, new_code
from gateway.proxy.grant_status import GrantStatusCache
from gateway.routes import RouteTable
from gateway.storage.records import Grant
from infra.memory.stores import MemoryGrantStore
from tests.support.runtime import example_config_data

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
    route = RouteTable(parse_config(example_config_data()), "https://gw.example.com").get("demo", "echo")
    assert route is not None
    user = SignedInUser("alice")
    issued = new_code(
        route=route, client_id="c", redirect_uri="x", code_challenge="c", scopes=("mcp",), user=user,
        signed_in_at=None, now=NOW, lifetime_seconds=60,
    )  # fmt: skip
    code = dataclasses.replace(issued.record, grant_id="g")
    policy = OAuthPolicy(refresh_token_absolute_ttl_seconds=3600, refresh_token_idle_ttl_seconds=600)
    grant = grant_from_code(code, route, policy, NOW)
    store.put_code(code)
    store.redeem_code(code.code_hash, dataclasses.replace(grant, **changes), None, NOW)  # type: ignore[arg-type]
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

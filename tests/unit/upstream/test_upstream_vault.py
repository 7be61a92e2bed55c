"""The vault: encrypted at rest under {workspace, server, subject}, cached warm, refreshed by one lease holder."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from gateway.audit import AuditTrail
from gateway.upstream.oauth_flow import TokenEndpointError
from gateway.upstream.token_set import TokenSet
from gateway.upstream.vault import CredentialRevoked, NotConnected, RefreshUnavailable, UpstreamVault
from infra.memory.cipher import LocalTokenCipher
from infra.memory.stores import MemoryAuditLog, MemoryUpstreamTokenStore
from tests.unit.upstream.fakes import token_set

ROUTE = "acme/notes"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class Refresher:
    def __init__(self, error: str | None = None) -> None:
        self.calls = 0
        self.error = error

    async def __call__(self, tokens: TokenSet) -> TokenSet:
        self.calls += 1
        if self.error == "unreachable":
            raise TokenEndpointError("token endpoint unreachable")
        if self.error:
            raise TokenEndpointError("refused", self.error)
        return dataclasses.replace(
            tokens, access_token=f"access-{self.calls + 1}", expires_at=tokens.obtained_at + 7200
        )


def vault(
    store: MemoryUpstreamTokenStore | None = None,
    cipher: LocalTokenCipher | None = None,
    refresher: Refresher | None = None,
    clock: Clock | None = None,
    **options: float,
) -> UpstreamVault:
    clock = clock or Clock()
    return UpstreamVault(
        store or MemoryUpstreamTokenStore(),
        cipher or LocalTokenCipher(),
        refresher or Refresher(),
        clock=clock,
        sleep=clock.sleep,
        **options,  # type: ignore[arg-type]
    )


def test_a_saved_credential_is_encrypted_and_decrypted_once_while_unchanged() -> None:
    store, cipher = MemoryUpstreamTokenStore(), LocalTokenCipher()
    writer = vault(store, cipher)
    writer.save(ROUTE, "alice", token_set())
    row = store.get(ROUTE, "alice")
    assert row is not None and b"access-1" not in row.ciphertext and row.version == 1
    reader = vault(store, cipher, cache_seconds=0)
    assert asyncio.run(reader.current(ROUTE, "alice")).access_token == "access-1"
    assert asyncio.run(reader.current(ROUTE, "alice")).access_token == "access-1"
    assert cipher.decryptions == 1  # the second read found the same version: no decryption (no KMS call)


def test_a_credential_connected_again_elsewhere_is_not_mistaken_for_the_one_cached_before() -> None:
    # Given a container that cached alice's first credential (version 1)
    store, cipher = MemoryUpstreamTokenStore(), LocalTokenCipher()
    first_container = vault(store, cipher, cache_seconds=0)
    first_container.save(ROUTE, "alice", token_set("first-access"))
    # When another container forgets it and alice connects again there: a new row, version 1 again
    other_container = vault(store, cipher)
    other_container.delete(ROUTE, "alice")
    other_container.save(ROUTE, "alice", token_set("second-access"))
    row = store.get(ROUTE, "alice")
    assert row is not None and row.version == 1

    # Then the first container reads the new credential, not the one it cached (a disconnect there revokes the
    # live grant at the upstream, and calls use the live token)
    assert asyncio.run(first_container.current(ROUTE, "alice")).access_token == "second-access"


def test_a_row_copied_to_another_user_does_not_decrypt() -> None:
    store, cipher = MemoryUpstreamTokenStore(), LocalTokenCipher()
    vault(store, cipher).save(ROUTE, "alice", token_set())
    row = store.get(ROUTE, "alice")
    assert row is not None
    store.put(dataclasses.replace(row, subject="bob"), None)
    with pytest.raises(NotConnected):
        asyncio.run(vault(store, cipher).current(ROUTE, "bob"))


def test_a_missing_credential_is_not_connected() -> None:
    with pytest.raises(NotConnected):
        asyncio.run(vault().current(ROUTE, "alice"))


def test_a_token_near_expiry_is_refreshed_and_stored_with_a_new_version() -> None:
    store, refresher, clock = MemoryUpstreamTokenStore(), Refresher(), Clock(1000 + 3590)
    subject = vault(store, refresher=refresher, clock=clock)
    subject.save(ROUTE, "alice", token_set())  # expires at 4600
    assert asyncio.run(subject.current(ROUTE, "alice")).access_token == "access-2"
    row = store.get(ROUTE, "alice")
    assert refresher.calls == 1 and row is not None and row.version == 2 and row.lease_owner is None


def test_a_stored_expiry_in_the_past_forces_a_refresh() -> None:
    store, refresher = MemoryUpstreamTokenStore(), Refresher()
    subject = vault(store, refresher=refresher, cache_seconds=0)
    subject.save(ROUTE, "alice", token_set())
    row = store.get(ROUTE, "alice")
    assert row is not None
    store._items[(ROUTE, "alice")] = dataclasses.replace(row, access_expires_at=10)  # an operator's edit
    assert asyncio.run(subject.current(ROUTE, "alice")).access_token == "access-2"


def test_a_refused_refresh_deletes_the_credential() -> None:
    store = MemoryUpstreamTokenStore()
    subject = vault(store, refresher=Refresher("invalid_grant"), clock=Clock(10_000))
    subject.save(ROUTE, "alice", token_set())
    with pytest.raises(CredentialRevoked):
        asyncio.run(subject.current(ROUTE, "alice"))
    assert store.get(ROUTE, "alice") is None


def test_an_unreachable_server_keeps_an_unexpired_token_and_fails_an_expired_one() -> None:
    store, clock = MemoryUpstreamTokenStore(), Clock(1000 + 3590)
    subject = vault(store, refresher=Refresher("unreachable"), clock=clock)
    subject.save(ROUTE, "alice", token_set())
    assert asyncio.run(subject.current(ROUTE, "alice")).access_token == "access-1"
    clock.now = 1000 + 3600 + 100
    subject.lease_seconds = 0  # the failed attempt's lease has lapsed
    with pytest.raises(RefreshUnavailable):
        asyncio.run(subject.current(ROUTE, "alice"))
    assert store.get(ROUTE, "alice") is not None  # transient: nothing deleted


def test_while_another_container_holds_the_lease_the_vault_waits_for_its_write() -> None:
    # Given a lease held by another container, which stores its refreshed token a moment later
    store, cipher, clock = MemoryUpstreamTokenStore(), LocalTokenCipher(), Clock(1000 + 3590)
    other = vault(store, cipher, clock=clock)
    other.save(ROUTE, "alice", token_set())
    assert store.acquire_lease(ROUTE, "alice", "other", 4590, 4600)
    refresher = Refresher()
    waiting = vault(store, cipher, refresher=refresher, clock=clock, poll_seconds=0.5)
    original_sleep = clock.sleep

    async def sleep_then_other_writes(seconds: float) -> None:
        await original_sleep(seconds)
        other.save(ROUTE, "alice", dataclasses.replace(token_set("access-other"), obtained_at=4590, expires_at=9000))

    waiting._sleep = sleep_then_other_writes
    # When this container needs the token, Then it uses the other's result without calling the AS
    assert asyncio.run(waiting.current(ROUTE, "alice")).access_token == "access-other"
    assert refresher.calls == 0


def test_after_unauthorized_refreshes_the_rejected_token_or_returns_a_newer_one() -> None:
    store, cipher, refresher = MemoryUpstreamTokenStore(), LocalTokenCipher(), Refresher()
    subject = vault(store, cipher, refresher=refresher)
    subject.save(ROUTE, "alice", token_set())
    rejected = asyncio.run(subject.current(ROUTE, "alice"))
    renewed = asyncio.run(subject.after_unauthorized(ROUTE, "alice", rejected))
    assert renewed.access_token == "access-2" and refresher.calls == 1
    # a container still holding the first token finds the newer one stored, without refreshing again
    assert (
        asyncio.run(vault(store, cipher, refresher=refresher).after_unauthorized(ROUTE, "alice", rejected)) == renewed
    )
    assert refresher.calls == 1


def test_refreshes_and_refused_refreshes_are_in_the_audit_trail() -> None:
    # Given a vault that records to an audit trail
    log = MemoryAuditLog()
    clock = Clock(1000 + 3590)
    store = MemoryUpstreamTokenStore()
    trail = AuditTrail(log, retention_days=1, clock=clock)
    refreshing = UpstreamVault(store, LocalTokenCipher(), Refresher(), clock=clock, sleep=clock.sleep, audit=trail)
    refreshing.save(ROUTE, "alice", token_set())
    refusing = UpstreamVault(
        store, LocalTokenCipher(), Refresher("invalid_grant"), clock=clock, sleep=clock.sleep, audit=trail
    )
    refusing.save(ROUTE, "bob", token_set())

    # When alice's credential is refreshed and bob's refresh is refused
    asyncio.run(refreshing.current(ROUTE, "alice"))
    with pytest.raises(CredentialRevoked):
        asyncio.run(refusing.current(ROUTE, "bob"))

    # Then both are events of the route, naming the user (never a token)
    events = {(event.kind, event.user_id): event for event in log.events("acme", since=0, until=10**9)}
    assert set(events) == {("upstream.refreshed", "alice"), ("upstream.failed", "bob")}
    assert events[("upstream.failed", "bob")].detail == {"error": "invalid_grant", "deleted": True}
    assert "access-" not in repr(events)


def test_disconnecting_deletes_and_revokes_at_the_upstream_even_when_the_revocation_fails() -> None:
    # Given alice's and bob's stored credentials, and an upstream whose revocation endpoint is down for bob
    revoked: list[str] = []

    async def revoker(tokens: TokenSet) -> bool:
        if tokens.access_token == "bob-access":
            raise TokenEndpointError("revocation endpoint unreachable")
        revoked.append(tokens.access_token)
        return True

    log, clock, store = MemoryAuditLog(), Clock(), MemoryUpstreamTokenStore()
    trail = AuditTrail(log, retention_days=1, clock=clock)
    disconnecting = UpstreamVault(
        store, LocalTokenCipher(), Refresher(), clock=clock, sleep=clock.sleep, audit=trail, revoker=revoker
    )
    disconnecting.save(ROUTE, "alice", token_set())
    disconnecting.save(ROUTE, "bob", token_set("bob-access"))

    # When both disconnect (and someone never connected does too)
    asyncio.run(disconnecting.disconnect(ROUTE, "alice"))
    asyncio.run(disconnecting.disconnect(ROUTE, "bob"))
    asyncio.run(disconnecting.disconnect(ROUTE, "carol"))

    # Then both credentials are gone, alice's was revoked upstream, and bob's failed revocation is audited
    assert store.get(ROUTE, "alice") is None and store.get(ROUTE, "bob") is None
    assert revoked == ["access-1"]
    events = [(event.kind, event.user_id, event.detail) for event in log.events("acme", since=0, until=10**9)]
    assert events == [("upstream.failed", "bob", {"error": "unreachable", "deleted": True})]

"""The records' own rules, which every store and every caller relies on: when a grant and a key may still be used,
which sign-in a grant's groups date from, and how audit events sort (the cursor of the audit trail's pages)."""

from __future__ import annotations

import dataclasses

from gateway.storage.records import ApiKey, AuditEvent, Grant

NOW = 1_800_000_000


def grant(**changes: object) -> Grant:
    base = Grant(
        grant_id="g-1", route_key="acme/notes", workspace="acme", user_id="alice", user_name="Alice",
        user_groups=("staff",), client_id="c-1", scopes=("mcp",), created_at=NOW - 100,
        absolute_expires_at=NOW + 1000, idle_expires_at=NOW + 500, refresh_salt="salt",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def key(**changes: object) -> ApiKey:
    base = ApiKey(
        key_id="k-1", workspace="acme", user_id="alice", name="ci", secret_hash="0" * 64, servers=("notes",),
        created_at=NOW - 100, expires_at=NOW + 100,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_grant_is_usable_until_its_first_end() -> None:
    assert grant().is_usable(NOW)
    assert not grant().is_usable(NOW + 500)  # idle lifetime over (the earlier end)
    assert not grant(idle_expires_at=NOW + 5000).is_usable(NOW + 1000)  # absolute lifetime over
    assert not grant(status="revoked", revoked_at=NOW - 1).is_usable(NOW)


def test_a_grants_groups_date_from_its_last_sign_in() -> None:
    assert grant(signed_in_at=NOW - 10).groups_as_of == NOW - 10
    assert grant(signed_in_at=None).groups_as_of == NOW - 100  # older grants: their creation stands in


def test_a_key_without_expiry_lasts_until_revoked() -> None:
    assert key(expires_at=None).is_usable(NOW + 10**9)
    assert not key(expires_at=NOW).is_usable(NOW)
    assert not key(status="revoked", expires_at=None).is_usable(NOW)


def test_audit_events_sort_by_time_then_id_whatever_the_digits() -> None:
    # The position is the audit trail's page cursor: string order must be time order, then id order.
    events = [
        AuditEvent(event_id=event_id, at=at, kind="tool.called", workspace="acme", expires_at=at + 1)
        for event_id, at in (("b", 999), ("a", 1000), ("c", 10_000), ("a", 999))
    ]
    assert [event.position for event in sorted(events, key=lambda event: event.position)] == [
        "000000000999#a",
        "000000000999#b",
        "000000001000#a",
        "000000010000#c",
    ]

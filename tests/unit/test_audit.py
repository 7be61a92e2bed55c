"""The audit trail: what is recorded, that a failed write never fails the request it describes, and that the events
of a token's life are recorded by the token service."""

from __future__ import annotations

import logging

import pytest

from gateway.audit import REDACTED, AuditTrail
from gateway.storage.ports import StorageError
from gateway.storage.records import AuditEvent
from infra.memory.stores import MemoryAuditLog

NOW = 1_800_000_000


class FailingLog(MemoryAuditLog):
    def append(self, event: AuditEvent) -> None:
        raise StorageError("throttled")


def test_an_event_carries_who_what_where_and_expires_after_the_retention() -> None:
    log = MemoryAuditLog()
    trail = AuditTrail(log, retention_days=90, clock=lambda: NOW)
    event = trail.record(
        "token.issued", workspace="demo", route_key="demo/echo", user_id="alice", client_id="c1", grant_id="g1",
        scope="mcp", missing=None,
    )  # fmt: skip
    assert event is not None
    assert log.events("demo", since=NOW, until=NOW + 1) == [event]
    assert (event.kind, event.user_id, event.client_id, event.grant_id) == ("token.issued", "alice", "c1", "g1")
    assert event.detail == {"scope": "mcp"}  # None details are left out
    assert event.expires_at == NOW + 90 * 86400


def test_a_failed_write_is_logged_and_counted_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    trail = AuditTrail(FailingLog(), retention_days=1, clock=lambda: NOW)
    with caplog.at_level(logging.WARNING, logger="gateway.audit"):
        assert trail.record("client.registered", workspace="demo", client_id="c1") is None
    assert trail.failures == 1
    assert "client.registered" in caplog.text and "c1" not in caplog.text  # the kind, not the event's details


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("note", "eyJhbGciOiJSUzI1NiJ9.e30.sig"),  # a JWT
        ("client_name", "eyJhbGciOi"),  # the start of one
        ("tool", "mcpgw_0123456789abcdef_secret"),  # a gateway API key
        ("error", "Bearer eyJhbGciOi"),  # an upstream authorization server's error, carrying one
        ("hint", "a mcpgw_x"),
    ],
)
def test_a_detail_that_looks_like_a_credential_is_redacted_and_the_event_recorded(
    name: str, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a trail
    log = MemoryAuditLog()
    trail = AuditTrail(log, retention_days=1, clock=lambda: NOW)

    # When an event's detail (chosen by whoever sent the request) is shaped like a credential
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        event = trail.record("token.revoked", workspace="demo", client_id="c1", **{name: value, "scope": "mcp"})

    # Then the event is recorded with that value redacted, the rest kept, and the log names only the field
    assert event is not None and log.events("demo", since=NOW, until=NOW + 1) == [event]
    assert event.detail == {name: REDACTED, "scope": "mcp"}
    assert name in caplog.text and value not in caplog.text


@pytest.mark.parametrize("value", ["heyJoe", "Tools for mcp", "eyj lowercase", "my_mcpgw_tool"])
def test_ordinary_values_are_kept(value: str) -> None:
    trail = AuditTrail(MemoryAuditLog(), retention_days=1, clock=lambda: NOW)
    event = trail.record("client.registered", workspace="demo", client_name=value)
    assert event is not None and event.detail == {"client_name": value}


def test_tool_calls_can_be_left_out() -> None:
    log = MemoryAuditLog()
    trail = AuditTrail(log, retention_days=1, clock=lambda: NOW, tool_calls=False)
    assert trail.record("tool.called", workspace="demo", tool="echo") is None
    assert trail.record("token.refreshed", workspace="demo") is not None
    assert [event.kind for event in log.events("demo", since=0, until=NOW + 1)] == ["token.refreshed"]

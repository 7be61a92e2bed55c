"""The audit trail: who did what, with which client, on which route (issue "Observability, audit trail and
administration"). Events go to an :class:`~gateway.storage.ports.AuditLog` (the ``audit`` table in a deployment).

Recording never fails the request it describes: a write that fails is logged (without the event's details) and
counted in :attr:`AuditTrail.failures`. Details are the kind's own facts; callers pass no token, code, secret or
cookie. Many details are chosen by whoever sent the request (a client's name, a tool's name, a revocation hint), so
a value that looks like one of the gateway's own credentials (a JWT, an ``mcpgw_`` API key) is stored as
:data:`REDACTED` and the event is recorded all the same: refusing it would fail a request whose effect (a stored
client, a revoked grant, a tool call) has already happened.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable

from gateway.storage.ports import AuditLog, StorageError
from gateway.storage.records import AuditEvent, AuditKind

logger = logging.getLogger("gateway.audit")

DAY_SECONDS = 86400
_sequence = itertools.count()
REDACTED = "<redacted>"
# A JWT (its header is base64url of '{"...') or a gateway API key, at the start of the value or of a word in it
# ("Bearer eyJ..."), but not inside one ("heyJoe").
_SECRET_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])(?:eyJ|mcpgw_)")


def redacted(value: str | int | bool) -> str | int | bool:
    """``value``, or :data:`REDACTED` when it looks like a credential."""
    if isinstance(value, str) and _SECRET_SHAPE.search(value):
        return REDACTED
    return value


class AuditTrail:
    def __init__(
        self,
        log: AuditLog,
        retention_days: int,
        clock: Callable[[], float] = time.time,
        *,
        tool_calls: bool = True,
    ) -> None:
        self._log = log
        self._retention = retention_days * DAY_SECONDS
        self._clock = clock
        self.tool_calls = tool_calls
        """Whether ``tool.called`` events are recorded (an operator may turn them off for latency)."""
        self.failures = 0

    def record(
        self,
        kind: AuditKind,
        *,
        workspace: str,
        route_key: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        grant_id: str | None = None,
        **detail: str | int | bool | None,
    ) -> AuditEvent | None:
        """Append one event; returns it, or None when the write failed (logged and counted, never raised) or the
        kind is turned off."""
        if kind == "tool.called" and not self.tool_calls:
            return None
        at = int(self._clock())
        facts = {name: redacted(value) for name, value in detail.items() if value is not None}
        hidden = sorted(name for name, value in facts.items() if value == REDACTED and detail[name] != REDACTED)
        if hidden:
            logger.info("audit event %s: %s redacted (shaped like a credential)", kind, ", ".join(hidden))
        event = AuditEvent(
            # the container's sequence keeps its events of one second in order; the random part keeps ids unique
            event_id=f"{next(_sequence) % 16**8:08x}{secrets.token_hex(4)}",
            at=at,
            kind=kind,
            workspace=workspace,
            expires_at=at + self._retention,
            route_key=route_key,
            user_id=user_id,
            client_id=client_id,
            grant_id=grant_id,
            detail=facts,
        )
        try:
            self._log.append(event)
        except StorageError as problem:
            self.failures += 1
            logger.warning("audit event %s not written: %s", kind, problem)
            return None
        return event

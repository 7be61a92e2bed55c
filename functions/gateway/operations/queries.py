"""What the operator service (:mod:`gateway.operations.service`) raises, takes and pages besides its views: the
operator's errors, the audit query, pages of a listing, the result of an offboarding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.operations.views import Offboarding
from gateway.storage.records import AuditEvent

T = TypeVar("T")


class OperatorError(Exception):
    """A request the operator can correct; the message says how."""


class NotFound(OperatorError):
    """The grant, client, key or connection named does not exist."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Audit events of a workspace with ``since <= at < until``, newest first, filtered by what is given."""

    workspace: str
    since: int
    until: int
    route_key: str | None = None
    user_id: str | None = None
    client_id: str | None = None
    kinds: tuple[str, ...] = ()
    """Any of these kinds (empty: every kind)."""
    limit: int = 100
    before: str | None = None
    """The page after the one that ended with this position (:attr:`AuditPage.next_before`)."""


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit events, newest first; ``next_before`` is the next page's ``before`` (None: no more)."""

    events: list[AuditEvent]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, newest first; ``next_before`` is the next page's ``before`` (None: no more)."""

    items: list[T]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class OffboardingResult:
    """What :meth:`OperatorService.offboard_user` ended, and what it could not (``failures``: one line each)."""

    offboarding: Offboarding
    failures: tuple[str, ...] = ()

"""What the console's pages and its JSON API read alike: the audit filters, time ranges, and the routes whose
upstream accounts each user connects."""

from __future__ import annotations

import typing
from typing import Annotated

from fastapi import Query

from gateway.config import OAuthUpstreamAuth
from gateway.storage.records import AuditKind
from gateway.upstream.subjects import is_shared
from gateway.web.admin.access import Admin

AUDIT_KINDS: tuple[str, ...] = typing.get_args(AuditKind)
MAX_TIME = 2**40  # far past any date an event can have: bounds what a query parameter may say
DEFAULT_RANGE_SECONDS = 7 * 86400
KindName = typing.Literal[AUDIT_KINDS]  # type: ignore[valid-type]


def time_range(now: int, since: int | None, until: int | None) -> tuple[int, int]:
    """``[since, until)``, by default the last week up to now (inclusive)."""
    end = until if until is not None else now + 1
    start = since if since is not None else end - DEFAULT_RANGE_SECONDS
    return min(start, end), end


class AuditFilters:
    """The audit trail's filters, as query parameters."""

    def __init__(
        self,
        kind: Annotated[list[KindName], Query(max_length=len(AUDIT_KINDS))] = [],  # noqa: B006 - FastAPI copies it
        user_id: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
        client_id: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
        route_key: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
        since: Annotated[int | None, Query(ge=0, le=MAX_TIME)] = None,
        until: Annotated[int | None, Query(ge=0, le=MAX_TIME)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        before: Annotated[str | None, Query(max_length=300)] = None,
    ) -> None:
        self.kind = list(dict.fromkeys(kind))
        self.user_id = user_id
        self.client_id = client_id
        self.route_key = route_key
        self.since = since
        self.until = until
        self.limit = limit
        self.before = before


def connection_route_keys(admin: Admin) -> list[str]:
    """The workspace's routes (each upstream of its virtual routes) whose upstream account each user connects."""
    found = []
    for route in admin.services.routes.all():
        if route.workspace_name == admin.workspace:
            found += route.members() if route.is_virtual else [route]
    return [route.key for route in found if isinstance(route.server.auth, OAuthUpstreamAuth) and not is_shared(route)]

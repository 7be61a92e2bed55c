"""The audit trail as a file: CSV (one event a row, its details as JSON in the last column) or JSON (a list of
events). Read page after page through the operator service, at most :data:`MAX_EVENTS` events (the newest first):
a wider export narrows its time range.

Values a spreadsheet would run as a formula (a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return: OWASP "CSV injection") are prefixed with ``'``: many come from whoever sent a request (a client's name, a
tool's name).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Literal

from starlette.responses import Response

from gateway.operations.queries import AuditQuery
from gateway.operations.service import OperatorService
from gateway.storage.records import AuditEvent

MAX_EVENTS = 10_000
PAGE = 500
COLUMNS = ("at", "kind", "workspace", "route_key", "user_id", "client_id", "grant_id", "event_id", "detail")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Download = Response


def _events(operator: OperatorService, query: AuditQuery) -> list[AuditEvent]:
    found: list[AuditEvent] = []
    before = query.before
    while len(found) < MAX_EVENTS:
        page = operator.audit_events(
            dataclasses.replace(query, limit=min(PAGE, MAX_EVENTS - len(found)), before=before)
        )
        found += page.events
        if page.next_before is None:
            break
        before = page.next_before
    return found


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def as_csv(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(COLUMNS)
    for event in events:
        detail = json.dumps(event.detail, sort_keys=True, separators=(",", ":"))
        row = (event.at, event.kind, event.workspace, event.route_key, event.user_id, event.client_id,
               event.grant_id, event.event_id, detail)  # fmt: skip
        writer.writerow([_cell(value) for value in row])
    return out.getvalue()


def download(operator: OperatorService, query: AuditQuery, format: Literal["csv", "json"], workspace: str) -> Response:
    events = _events(operator, query)
    name = f"audit-{workspace}-{query.since}-{query.until}.{format}"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if format == "csv":
        return Response(as_csv(events), media_type="text/csv; charset=utf-8", headers=headers)
    body = json.dumps([dataclasses.asdict(event) for event in events], separators=(",", ":"))
    return Response(body, media_type="application/json", headers=headers)

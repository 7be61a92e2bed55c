"""``make bench`` part ``console``: the admin console's pages, warm, against the local stack with a week of audit
events loaded (100,000 by default) and the usage rollups of the calls among them; and what the usage rollups add to
each proxied tool call (their two ``UpdateItem``s beside the ``tool.called`` event's ``PutItem``).

The admin function's app runs in this process on the stack's DynamoDB (moto in a process of its own, over kept
connections), as a warm container would; each page is requested through the ASGI app with an administrator's
session cookie, timed from request to complete answer. Target: every page ≤ 300 ms at p50 (issue "Admin console").
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.testclient import TestClient

from gateway.aws.dynamodb_audit import audit_item
from gateway.identity.user import SignedInUser
from gateway.runtime import Runtime
from gateway.storage.records import AuditEvent, ToolCall
from gateway.web.admin.app import create_app
from gateway.web.common import session

WORKSPACE = "demo"
TARGET_MS = 300.0
KINDS = (
    ("tool.called", 0.90), ("token.refreshed", 0.04), ("token.issued", 0.02), ("user.signed_in", 0.015),
    ("authorize.started", 0.015), ("consent.granted", 0.01),
)  # fmt: skip
WEEK = 7 * 86400


def _events(count: int, now: int, seed: int = 7) -> list[AuditEvent]:
    pick = random.Random(seed)  # noqa: S311 - synthetic benchmark data, not a secret
    kinds = [kind for kind, _ in KINDS]
    weights = [weight for _, weight in KINDS]
    events = []
    for n in range(count):
        at = now - pick.randrange(WEEK)
        kind = pick.choices(kinds, weights)[0]
        user, client = f"user-{pick.randrange(200)}", f"client-{pick.randrange(300)}"
        detail: dict[str, str | int | bool] = {"tool": f"tool-{pick.randrange(5)}", "outcome": "ok"}
        if kind.startswith("token."):
            detail = {
                "scope": "mcp",
                "grant_type": "authorization_code",
                "token_type": "Bearer",
                "expires_at": at + 3600,
            }
        events.append(
            AuditEvent(
                event_id=f"{n:08x}bench", at=at, kind=kind, workspace=WORKSPACE, expires_at=at + 90 * 86400,  # type: ignore[arg-type]
                route_key="demo/echo", user_id=user, client_id=client, grant_id=f"grant-{n % 500}", detail=detail,
            )
        )  # fmt: skip
    return events


def _load(runtime: Runtime, events: list[AuditEvent]) -> float:
    started = time.perf_counter()
    table = runtime.settings.audit_table
    for start in range(0, len(events), 25):
        batch = [{"PutRequest": {"Item": audit_item(event)}} for event in events[start : start + 25]]
        pending: dict[str, Any] = {table: batch}
        while pending:
            answer = runtime.dynamodb.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
    return time.perf_counter() - started


def _per_call_ms(function: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        function(n)
    return (time.perf_counter() - started) * 1000 / count


def _admin_client(runtime: Runtime) -> TestClient:
    client = TestClient(create_app(runtime), base_url=runtime.base_url)
    response = Response()
    session.start(
        response, SignedInUser("alice", "Alice Example"), WORKSPACE, base_url=runtime.base_url,
        secret=runtime.shared_secret, now=runtime.now(),
    )  # fmt: skip
    name, _, rest = response.headers["set-cookie"].partition("=")
    client.cookies.set(name, rest.split(";", 1)[0])
    return client


def measure_console(stack: Any, audit_events: int, rounds: int = 15) -> str:
    runtime = Runtime.from_environment()
    now = runtime.now()
    events = _events(audit_events, now)
    loaded_s = _load(runtime, events)

    # What the rollups add per tool call, beside the audit event (both round trips to the local store)
    # 300 at the default 100,000 events; a handful for a smoke run of a few hundred
    calls = [e for e in events if e.kind == "tool.called"][: min(300, max(10, audit_events // 100))]

    def rollup(n: int) -> None:
        e = calls[n]
        assert e.client_id is not None
        assert e.user_id is not None
        runtime.usage.record(ToolCall(WORKSPACE, "demo/echo", str(e.detail["tool"]), e.client_id, e.user_id, e.at,
                                      "ok" if n % 10 else "http_502", 12.0 + n % 7, 9.0 + n % 5))  # fmt: skip

    def audit(n: int) -> None:
        runtime.audit.record("tool.called", workspace=WORKSPACE, route_key="demo/echo", user_id="bench",
                             client_id="bench", tool="echo", outcome="ok", duration_ms=3)  # fmt: skip

    rollup_ms = _per_call_ms(rollup, len(calls))
    audit_ms = _per_call_ms(audit, len(calls))

    client = _admin_client(runtime)
    user, client_id = "user-7", "client-11"
    pages = {
        "Overview, last day": "/demo/admin?window=day",
        "Overview, last week": "/demo/admin?window=week",
        "Clients": "/demo/admin/clients",
        "Grants": "/demo/admin/grants",
        "Issuances": "/demo/admin/issuances",
        "Audit log (newest 50)": "/demo/admin/audit",
        "Audit log, one user": f"/demo/admin/audit?user_id={user}",
        "Audit log, one client": f"/demo/admin/audit?client_id={client_id}",
        "Audit log, kind consent.granted": "/demo/admin/audit?kind=consent.granted",
        "Audit log, kind tool.called": "/demo/admin/audit?kind=tool.called",
        "Sign-in funnel, one client": f"/demo/admin/funnel?client_id={client_id}",
        "API keys": "/demo/admin/keys",
        "Users, one user": f"/demo/admin/users?user_id={user}",
        "API: audit, one client (JSON)": f"/demo/admin/api/audit?client_id={client_id}",
    }
    rows = []
    worst = 0.0
    for name, path in pages.items():
        times = []
        for number in range(rounds + 2):
            started = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            if number >= 2:  # two warm-ups: the container is warm
                times.append(elapsed)
        p50 = statistics.median(times)
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        worst = max(worst, p50)
        rows.append(f"| {name} | {p50:.1f} | {p95:.1f} | {'met' if p50 <= TARGET_MS else 'missed'} |")
    table = "\n".join(["| page (warm) | p50 ms | p95 ms | ≤ 300 ms |", "|---|---|---|---|", *rows])
    return (
        f"{audit_events:,} audit events over a week loaded in {loaded_s:.0f} s ({len(calls)} calls counted into "
        f"the usage rollups); {rounds} requests per page after two warm-ups, in-process against the local "
        f"store.\n\n{table}\n\nPer proxied tool call, against the same local store: the `tool.called` event "
        f"(one `PutItem`) {audit_ms:.2f} ms, the usage rollups (two `UpdateItem`s) {rollup_ms:.2f} ms. Slowest "
        f"page p50: {worst:.1f} ms ({'met' if worst <= TARGET_MS else 'missed'})."
    )

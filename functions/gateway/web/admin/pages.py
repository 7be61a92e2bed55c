"""The console's views, server-rendered (no script: the CSP allows none): Overview, Clients, Grants, Issuances,
Audit log, Sign-in funnel, API keys, Users. Each reads through the operator service (as the JSON API does), filters
and pages with its query parameters, and links each row's action to its confirmation (:mod:`gateway.web.admin.
actions`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import HTMLResponse

from gateway.operations.insight import WINDOW_SECONDS, FiguresRow, Window
from gateway.operations.queries import AuditQuery
from gateway.web.admin.access import Admin, console_url
from gateway.web.admin.api import user_access
from gateway.web.admin.listing import AUDIT_KINDS, time_range
from gateway.web.admin.tables import FilterField, Link, Row, Table, confirm_url, page_url, when
from gateway.web.admin.tables import ms as ms_text
from gateway.web.common.pages import page

NAVIGATION = (
    ("", "Overview"),
    ("clients", "Clients"),
    ("grants", "Grants"),
    ("issuances", "Issuances"),
    ("audit", "Audit log"),
    ("funnel", "Sign-in funnel"),
    ("keys", "API keys"),
    ("users", "Users"),
)
PAGE_SIZE = 50
MAX_FILTER = 2000


def _query(params: Mapping[str, str], *names: str) -> dict[str, str | None]:
    return {name: (params.get(name) or None) for name in names if len(params.get(name) or "") <= MAX_FILTER}


def render(admin: Admin, current: str, title: str, **context: Any) -> HTMLResponse:
    context.setdefault("tables", [])
    context.setdefault("filters", [])
    context.setdefault("filter_action", console_url(admin.services.base_url, admin.workspace, current))
    return page(
        "admin.html",
        page_title=title,
        heading=title,
        workspace_title=admin.settings.title or admin.workspace,
        user_name=admin.session.display_name,
        navigation=[
            (label, console_url(admin.services.base_url, admin.workspace, name), name == current)
            for name, label in NAVIGATION
        ],
        sign_out=console_url(admin.services.base_url, admin.workspace, "sign-out"),
        csrf=admin.csrf,
        **context,
    )


def _figures_row(row: FiguresRow) -> Row:
    return Row(
        (
            row.name, row.calls, row.errors, row.errors_gateway, row.errors_upstream, row.errors_auth,
            ms_text(row.gateway_p50_ms), ms_text(row.gateway_p95_ms), ms_text(row.upstream_p50_ms),
            ms_text(row.upstream_p95_ms),
        )
    )  # fmt: skip


FIGURE_COLUMNS = (
    "", "calls", "errors", "gateway", "upstream", "auth", "gateway p50 ms", "gateway p95 ms", "upstream p50 ms",
    "upstream p95 ms",
)  # fmt: skip


def overview(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    chosen = params.get("window", "day")
    window: Window = chosen if chosen in WINDOW_SECONDS else "day"
    seen = admin.operator().overview(admin.workspace, window)
    grants_url = console_url(admin.services.base_url, admin.workspace, "grants")
    return render(
        admin,
        "",
        "Overview",
        windows=[(name, page_url(admin, "", {}, window=name), name == window) for name in ("hour", "day", "week")],
        summary=seen.total,
        filters=[],
        tables=[
            Table(
                f"Routes, last {window}",
                FIGURE_COLUMNS,
                [_figures_row(r) for r in seen.routes],
                "No MCP calls in this window.",
            ),
            Table(
                f"Tools, last {window}",
                FIGURE_COLUMNS,
                [_figures_row(r) for r in seen.tools],
                "No tool calls in this window.",
            ),
            Table(
                "Most active clients",
                ("client", "calls", "errors"),
                [
                    Row((r.id, r.calls, r.errors), (Link("grants", f"{grants_url}?client_id={r.id}"),))
                    for r in seen.top_clients
                ],
            ),
            Table(
                "Most active users",
                ("user", "calls", "errors"),
                [
                    Row((r.id, r.calls, r.errors), (Link("user", page_url(admin, "users", {}, user_id=r.id)),))
                    for r in seen.top_users
                ],
            ),
        ],
    )


def clients(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    query = _query(params, "before")
    found = admin.operator().clients_of_workspace(admin.workspace, limit=PAGE_SIZE, before=query["before"])
    rows = [
        Row(
            (
                client.name,
                client.kind,
                client.client_id,
                ", ".join(client.routes),
                "\n".join(client.redirect_uris),
                ", ".join(client.grant_types),
                when(client.first_used_at),
                when(client.last_used_at),
            ),
            (
                Link("grants", page_url(admin, "grants", {}, client_id=client.client_id)),
                Link("funnel", page_url(admin, "funnel", {}, client_id=client.client_id)),
                Link("revoke", confirm_url(admin, "revoke_client", id=client.client_id), danger=True),
            ),
        )
        for client in found.items
    ]
    next_url = page_url(admin, "clients", query, before=found.next_before) if found.next_before else None
    columns = ("name", "kind", "client id", "routes", "redirect URIs", "grant types", "first use", "last use")
    return render(admin, "clients", "Clients", tables=[Table("Clients", columns, rows, next_url=next_url)])


def grants(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    query = _query(params, "client_id", "route_key", "user_id", "before")
    found = admin.operator().grants_of_workspace(
        admin.workspace, limit=PAGE_SIZE, before=query["before"], client_id=query["client_id"],
        route_key=query["route_key"], user_id=query["user_id"],
    )  # fmt: skip
    rows = [
        Row(
            (
                grant.user_name or grant.user_id,
                grant.client_id,
                grant.route_key,
                " ".join(grant.scopes),
                when(grant.created_at),
                when(grant.rotated_at or grant.created_at),
                grant.obtained_by,
                grant.status + (f" ({grant.revoked_reason})" if grant.revoked_reason else ""),
                grant.grant_id,
            ),
            (Link("revoke", confirm_url(admin, "revoke_grant", id=grant.grant_id), danger=True),)
            if grant.status == "active"
            else (),
        )
        for grant in found.items
    ]
    next_url = page_url(admin, "grants", query, before=found.next_before) if found.next_before else None
    columns = ("user", "client", "route", "scopes", "created", "last token", "obtained by", "status", "grant id")
    return render(
        admin, "grants", "Grants",
        filters=[FilterField(name, label, query[name] or "") for name, label in
                 (("user_id", "user"), ("client_id", "client"), ("route_key", "route"))],
        tables=[Table("Grants", columns, rows, next_url=next_url,
                      note="“Last token” is the grant's last refresh: an active client refreshes at least as often "
                           "as its access tokens expire.")],
    )  # fmt: skip


def issuances(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    query = _query(params, "client_id", "user_id", "before")
    since, until = time_range(admin.now(), None, None)
    found = admin.operator().issuances(
        admin.workspace, since=since, until=until, limit=PAGE_SIZE, before=query["before"],
        client_id=query["client_id"], user_id=query["user_id"],
    )  # fmt: skip
    rows = [
        Row((when(i.at), i.subject, i.client_id, i.resource or i.route_key, i.scope, i.token_type,
             i.grant_type or ("refresh_token" if i.kind == "token.refreshed" else ""), when(i.expires_at)))
        for i in found.items
    ]  # fmt: skip
    next_url = page_url(admin, "issuances", query, before=found.next_before) if found.next_before else None
    columns = ("issued", "sub", "client", "resource", "scope", "token type", "grant type", "expires")
    return render(
        admin, "issuances", "Issuances",
        filters=[FilterField("user_id", "sub", query["user_id"] or ""),
                 FilterField("client_id", "client", query["client_id"] or "")],
        tables=[Table("Access tokens issued, last 7 days", columns, rows, next_url=next_url,
                      note="No token value is ever stored or shown.")],
    )  # fmt: skip


def audit(admin: Admin, params: Mapping[str, str], kinds: list[str]) -> HTMLResponse:
    query = _query(params, "user_id", "client_id", "route_key", "before", "since", "until")
    chosen = [kind for kind in kinds if kind in AUDIT_KINDS]
    since, until = time_range(admin.now(), _int(query["since"]), _int(query["until"]))
    page_of = admin.operator().audit_events(
        AuditQuery(
            admin.workspace, since, until, route_key=query["route_key"], user_id=query["user_id"],
            client_id=query["client_id"], kinds=tuple(chosen), limit=PAGE_SIZE, before=query["before"],
        )
    )  # fmt: skip
    rows = [
        Row((when(e.at), e.kind, e.user_id, e.client_id, e.route_key,
             ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items()))))
        for e in page_of.events
    ]  # fmt: skip
    filters = {**query, "kind": chosen[0] if chosen else None}
    next_url = page_url(admin, "audit", filters, before=page_of.next_before) if page_of.next_before else None
    exports = {
        fmt: page_url(admin, "api/audit/export", {**filters, "before": None}, format=fmt) for fmt in ("csv", "json")
    }
    return render(
        admin, "audit", "Audit log",
        filters=[
            FilterField("kind", "kind", chosen[0] if chosen else "", [("", "any")] + [(k, k) for k in AUDIT_KINDS]),
            FilterField("user_id", "user", query["user_id"] or ""),
            FilterField("client_id", "client", query["client_id"] or ""),
            FilterField("route_key", "route", query["route_key"] or ""),
            FilterField("since", "since (unix)", query["since"] or ""),
            FilterField("until", "until (unix)", query["until"] or ""),
        ],
        exports=exports,
        tables=[Table(f"Events {when(since)} to {when(until)} UTC", ("time", "kind", "user", "client", "route",
                                                                      "detail"), rows, next_url=next_url)],
    )  # fmt: skip


def funnel(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    query = _query(params, "client_id")
    tables = []
    if query["client_id"]:
        since, until = time_range(admin.now(), None, None)
        seen = admin.operator().funnel(admin.workspace, query["client_id"], since=since, until=until)
        tables.append(
            Table(
                f"{seen.client_id}, last 7 days",
                ("stage", "count", "last"),
                [Row((stage.stage, stage.count, when(stage.last_at))) for stage in seen.stages],
                note=(
                    f"Users stopped before: {seen.stopped_at}."
                    if seen.stopped_at
                    else "No one was lost between stages."
                )
                + " Authorize started counts sign-ins begun (no user is known yet); the others count distinct users.",
            )
        )
    return render(
        admin, "funnel", "Sign-in funnel",
        filters=[FilterField("client_id", "client id", query["client_id"] or "")],
        tables=tables,
    )  # fmt: skip


def keys(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    found = admin.operator().keys(admin.workspace)
    rows = [
        Row(
            (
                key.name,
                key.key_id,
                key.user_id,
                ", ".join(key.servers),
                ", ".join(key.tools) or "all",
                when(key.created_at),
                key.created_by or "",
                when(key.expires_at) if key.expires_at else "never",
                key.status,
            ),
            (Link("revoke", confirm_url(admin, "revoke_key", id=key.key_id), danger=True),)
            if key.status == "active"
            else (),
        )
        for key in reversed(found)
    ]
    columns = ("name", "key id", "owner", "routes", "tools", "created", "by", "expires", "status")
    servers = sorted(admin.settings.servers)
    return render(
        admin, "keys", "API keys",
        tables=[Table("Keys", columns, rows, note="A key's value is shown once, when it is created.")],
        create_key={"action": console_url(admin.services.base_url, admin.workspace, "act"), "servers": servers},
    )  # fmt: skip


def users(admin: Admin, params: Mapping[str, str]) -> HTMLResponse:
    query = _query(params, "user_id")
    tables = []
    user_id = query["user_id"]
    if user_id:
        access = user_access(admin, user_id)
        tables = [
            Table("Grants", ("client", "route", "status", "created", "obtained by"),
                  [Row((g.client_id, g.route_key, g.status, when(g.created_at), g.obtained_by),
                       (Link("revoke", confirm_url(admin, "revoke_grant", id=g.grant_id), danger=True),)
                       if g.status == "active" else ())
                   for g in access.grants]),
            Table("API keys", ("name", "key id", "status"),
                  [Row((k.name, k.key_id, k.status)) for k in access.keys]),
            Table("Upstream accounts", ("route", "updated"),
                  [Row((c.route_key, when(c.updated_at)),
                       (Link("disconnect", confirm_url(admin, "disconnect", id=c.route_key, user_id=user_id),
                             danger=True),))
                   for c in access.connections]),
        ]  # fmt: skip
    return render(
        admin, "users", "Users",
        filters=[FilterField("user_id", "user id", user_id or "")],
        tables=tables,
        offboard=confirm_url(admin, "offboard", user_id=user_id) if user_id else None,
    )  # fmt: skip


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() and len(text) <= 13 else None

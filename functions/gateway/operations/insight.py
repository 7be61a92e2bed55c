"""What the admin console shows beside the operator's actions: the Overview (usage rollups), the workspace's clients
of every kind, its grants, the tokens issued, and each client's sign-in funnel. Typed, secret-free views, read with
key-range queries only (the console's views and its JSON API serialize them as they are)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gateway.config import GatewayConfig
from gateway.storage.records import AuditEvent, CallerRollup, Grant, RegisteredClient, ToolRollup
from gateway.usage import HOUR, Figures, Ranked, figures_by, most_active, total

Window = Literal["hour", "day", "week"]
WINDOW_SECONDS: dict[Window, int] = {"hour": 3600, "day": 86400, "week": 7 * 86400}


@dataclass(frozen=True, slots=True)
class FiguresRow:
    """Calls, failures by origin and latency percentiles (ms) of a route, a tool or everything."""

    name: str
    calls: int
    errors: int
    errors_gateway: int
    errors_upstream: int
    errors_auth: int
    gateway_p50_ms: float | None
    gateway_p95_ms: float | None
    upstream_p50_ms: float | None
    upstream_p95_ms: float | None

    @classmethod
    def of(cls, name: str, figures: Figures) -> FiguresRow:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return cls(
            name=name,
            calls=figures.calls,
            errors=figures.error_count,
            errors_gateway=figures.errors.get("gateway", 0),
            errors_upstream=figures.errors.get("upstream", 0),
            errors_auth=figures.errors.get("auth", 0),
            gateway_p50_ms=rounded(figures.latency("gateway", 0.5)),
            gateway_p95_ms=rounded(figures.latency("gateway", 0.95)),
            upstream_p50_ms=rounded(figures.latency("upstream", 0.5)),
            upstream_p95_ms=rounded(figures.latency("upstream", 0.95)),
        )


@dataclass(frozen=True, slots=True)
class RankedRow:
    id: str
    calls: int
    errors: int

    @classmethod
    def of(cls, ranked: Ranked) -> RankedRow:
        return cls(ranked.id, ranked.calls, ranked.errors)


@dataclass(frozen=True, slots=True)
class Overview:
    """A workspace's MCP calls in the last hour, day or week (whole hours: the hour ``since`` falls in counts)."""

    workspace: str
    window: Window
    since: int
    until: int
    total: FiguresRow
    routes: tuple[FiguresRow, ...]
    tools: tuple[FiguresRow, ...]
    top_clients: tuple[RankedRow, ...]
    top_users: tuple[RankedRow, ...]


def overview(
    workspace: str, window: Window, now: int, tools: list[ToolRollup], callers: list[CallerRollup]
) -> Overview:
    since = now - WINDOW_SECONDS[window]
    in_window = [rollup for rollup in tools if rollup.hour >= since // HOUR]
    return Overview(
        workspace=workspace,
        window=window,
        since=since,
        until=now,
        total=FiguresRow.of("all routes", total(in_window)),
        routes=tuple(FiguresRow.of(name, f) for name, f in figures_by(in_window, lambda r: r.route_key).items()),
        tools=tuple(
            FiguresRow.of(name, f) for name, f in figures_by(in_window, lambda r: f"{r.route_key} {r.tool}").items()
        ),
        top_clients=tuple(RankedRow.of(r) for r in most_active(callers, since, lambda c: c.client_id)),
        top_users=tuple(RankedRow.of(r) for r in most_active(callers, since, lambda c: c.user_id)),
    )


# --- clients ------------------------------------------------------------------------------------------------------

ClientKind = Literal["dcr", "cimd", "preregistered", "service"]


@dataclass(frozen=True, slots=True)
class ClientRow:
    """A client of the workspace, whatever made it known: a registration (DCR), a metadata document (CIMD, known by
    the grants it holds), the configuration (pre-registered, and service identities using ``client_credentials``)."""

    client_id: str
    kind: ClientKind
    name: str
    routes: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    token_endpoint_auth_method: str | None
    first_used_at: int | None
    last_used_at: int | None
    expires_at: int | None = None
    service_identity: str | None = None
    software: str | None = None


def registered_row(client: RegisteredClient) -> ClientRow:
    software = " ".join(part for part in (client.software_id, client.software_version) if part) or None
    return ClientRow(
        client_id=client.client_id,
        kind="dcr",
        name=client.client_name,
        routes=(client.route_key,),
        redirect_uris=client.redirect_uris,
        grant_types=client.grant_types,
        token_endpoint_auth_method=client.token_endpoint_auth_method,
        first_used_at=client.created_at,
        last_used_at=client.last_used_at,
        expires_at=client.expires_at,
        software=software,
    )


def configured_rows(config: GatewayConfig, workspace: str) -> list[ClientRow]:
    """The workspace's pre-registered clients, from the configuration (``service`` when it acts as a service)."""
    settings = config.workspaces.get(workspace)
    if settings is None:
        return []
    rows = []
    for client in settings.clients:
        servers = client.servers or list(settings.servers)
        grant_types = ("client_credentials",) if client.service_identity else ("authorization_code", "refresh_token")
        rows.append(
            ClientRow(
                client_id=client.client_id,
                kind="service" if client.service_identity else "preregistered",
                name=client.client_name,
                routes=tuple(f"{workspace}/{server}" for server in servers),
                redirect_uris=tuple(client.redirect_uris),
                grant_types=grant_types,
                token_endpoint_auth_method="client_secret_basic" if client.client_secret is not None else "none",
                first_used_at=None,
                last_used_at=None,
                service_identity=client.service_identity,
            )
        )
    return rows


def metadata_document_rows(grants: Iterable[Grant]) -> list[ClientRow]:
    """Clients identified by a metadata document (their id is an https URL): known by the grants they hold, first
    and last used as those grants say (the documents themselves are cached, never stored)."""
    seen: dict[str, list[Grant]] = {}
    for grant in grants:
        if grant.client_id.startswith("https://"):
            seen.setdefault(grant.client_id, []).append(grant)
    return [
        ClientRow(
            client_id=client_id,
            kind="cimd",
            name=client_id,
            routes=tuple(sorted({grant.route_key for grant in held})),
            redirect_uris=(),
            grant_types=("authorization_code", "refresh_token"),
            token_endpoint_auth_method=None,
            first_used_at=min(grant.created_at for grant in held),
            last_used_at=max(grant.rotated_at or grant.created_at for grant in held),
        )
        for client_id, held in sorted(seen.items())
    ]


# --- issuances and the sign-in funnel -------------------------------------------------------------------------

ISSUANCE_KINDS = ("token.issued", "token.refreshed")
FUNNEL_KINDS = ("authorize.started", "user.signed_in", "consent.granted", "token.issued")


@dataclass(frozen=True, slots=True)
class Issuance:
    """An access token the gateway issued (never its value)."""

    at: int
    kind: str
    subject: str | None
    client_id: str | None
    route_key: str | None
    resource: str | None
    scope: str | None
    token_type: str
    grant_type: str | None
    expires_at: int | None
    grant_id: str | None

    @classmethod
    def of(cls, event: AuditEvent) -> Issuance:
        detail = event.detail
        expires = detail.get("expires_at")
        return cls(
            at=event.at,
            kind=event.kind,
            subject=event.user_id,
            client_id=event.client_id,
            route_key=event.route_key,
            resource=str(detail["resource"]) if "resource" in detail else None,
            scope=str(detail["scope"]) if "scope" in detail else None,
            token_type=str(detail.get("token_type", "Bearer")),
            grant_type=str(detail["grant_type"]) if "grant_type" in detail else None,
            expires_at=expires if isinstance(expires, int) and not isinstance(expires, bool) else None,
            grant_id=event.grant_id,
        )


@dataclass(frozen=True, slots=True)
class FunnelStage:
    stage: str
    count: int
    """Sign-ins started (no user is known yet), else the distinct users who reached the stage."""
    last_at: int | None


@dataclass(frozen=True, slots=True)
class Funnel:
    """Where a client's users got to in a time range: authorize started → signed in → consented → code exchanged →
    called a tool (an MCP call through the gateway)."""

    client_id: str
    since: int
    until: int
    stages: tuple[FunnelStage, ...]
    stopped_at: str | None
    """The first stage fewer users reached than the one before (None: nobody was lost, or nothing started)."""


def funnel(client_id: str, since: int, until: int, events: list[AuditEvent], callers: list[CallerRollup]) -> Funnel:
    def stage(name: str, chosen: list[AuditEvent], *, distinct: bool = True) -> FunnelStage:
        count = len({event.user_id for event in chosen}) if distinct else len(chosen)
        return FunnelStage(name, count, max((event.at for event in chosen), default=None))

    of_kind = {kind: [event for event in events if event.kind == kind] for kind in FUNNEL_KINDS}
    exchanged = [event for event in of_kind["token.issued"] if event.detail.get("grant_type") == "authorization_code"]
    calling = [c for c in callers if c.client_id == client_id and c.calls and c.last_at >= since]
    stages = (
        stage("authorize started", of_kind["authorize.started"], distinct=False),
        stage("signed in", of_kind["user.signed_in"]),
        stage("consented", of_kind["consent.granted"]),
        stage("code exchanged", exchanged),
        FunnelStage(
            "called a tool", len({c.user_id for c in calling}), max((c.last_at for c in calling), default=None)
        ),
    )
    stopped = next(
        (later.stage for earlier, later in itertools.pairwise(stages[1:]) if later.count < earlier.count),
        None,
    )
    if stopped is None and stages[0].count and not stages[1].count:
        stopped = stages[1].stage
    return Funnel(client_id, since, until, stages, stopped)

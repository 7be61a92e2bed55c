"""The admin console's JSON API, ``/{workspace}/admin/api/...`` (its OpenAPI document at ``.../api/openapi.json``).

Every operation is one call into the operator service (:mod:`gateway.operations.service`), which the console's pages
and ``mcp-gateway admin`` call too: nothing here decides anything the CLI would decide differently. Reads take a
signed-in administrator (:mod:`gateway.web.admin.access`); changes also take the session's CSRF token in the
``X-CSRF-Token`` header, and are audited as done by ``console:<admin>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from gateway.api_keys.issuing import KeyRequest
from gateway.operations.insight import ClientRow, Funnel, Issuance, Overview
from gateway.operations.queries import AuditQuery
from gateway.operations.views import ConnectionView, CreatedKey, Ended, GrantView, KeyView, Offboarding
from gateway.storage.records import AuditEvent
from gateway.web.admin import export
from gateway.web.admin.access import CSRF_HEADER, Admin, AdminServices, ConsoleRefusal, admin_of
from gateway.web.admin.listing import (
    AUDIT_KINDS,
    MAX_TIME,
    AuditFilters,
    connection_route_keys,
    time_range,
)

Id = Annotated[str, Field(min_length=1, max_length=2000)]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[str | None, Query(max_length=300)]
Time = Annotated[int | None, Query(ge=0, le=MAX_TIME)]
Filter = Annotated[str | None, Query(min_length=1, max_length=2000)]


# --- request and response bodies ------------------------------------------------------------------------------


class RevokeGrant(BaseModel):
    grant_id: Id


class RevokeClient(BaseModel):
    client_id: Id


class RevokeKey(BaseModel):
    key_id: Id


class CreateKey(BaseModel):
    """A new gateway API key (docs/non-interactive.md); its value is in the answer, once, and nowhere else."""

    user_id: Id = Field(description="The owner: a user of the workspace's identity provider, or service:<name>.")
    name: Annotated[str, Field(min_length=1, max_length=100)]
    servers: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=100)]
    tools: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=500)] = []
    groups: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=100)] = []
    expires_in_days: Annotated[int | None, Field(ge=1, le=3650)] = None


class Disconnect(BaseModel):
    route_key: Id
    user_id: Id


class Offboard(BaseModel):
    user_id: Id
    keep_connections: bool = False


@dataclass(frozen=True, slots=True)
class GrantPage:
    items: list[GrantView]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class ClientPage:
    items: list[ClientRow]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class IssuancePage:
    items: list[Issuance]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[AuditEvent]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class UserAccess:
    """What one user holds in the workspace: grants, API keys, upstream accounts."""

    user_id: str
    grants: list[GrantView]
    keys: list[KeyView]
    connections: list[ConnectionView]


@dataclass(frozen=True, slots=True)
class OffboardingAnswer:
    offboarding: Offboarding
    failures: list[str]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Who is signed in, and the CSRF token the API's changes carry (``X-CSRF-Token``)."""

    workspace: str
    user_id: str
    name: str | None
    csrf_token: str
    expires_at: int


# --- access -----------------------------------------------------------------------------------------------------


def _services(request: Request) -> AdminServices:
    services: AdminServices = request.app.state.services
    return services


def reading(workspace: str, request: Request) -> Admin:
    """The signed-in administrator of the workspace the path names (401, 403, 404 otherwise)."""
    return admin_of(_services(request), workspace, request.cookies)


def acting(workspace: str, request: Request) -> Admin:
    """As :func:`reading`, for a change: with the session's CSRF token in the ``X-CSRF-Token`` header."""
    admin = admin_of(_services(request), workspace, request.cookies)
    if not admin.csrf_matches(request.headers.get(CSRF_HEADER)):
        raise ConsoleRefusal(403, workspace, f"A change needs the session's CSRF token in {CSRF_HEADER}.")
    return admin


Reader = Annotated[Admin, Depends(reading)]
Actor = Annotated[Admin, Depends(acting)]


def router() -> APIRouter:
    api = APIRouter(prefix="/{workspace}/admin/api")

    # --- looking -----------------------------------------------------------------------------------------------

    @api.get("/session", response_model=SessionInfo, tags=["session"])
    def get_session(admin: Reader) -> SessionInfo:
        """The signed-in administrator and the CSRF token for changes."""
        signed = admin.session
        return SessionInfo(admin.workspace, signed.user_id, signed.name, admin.csrf, signed.expires_at)

    @api.get("/overview", response_model=Overview, tags=["overview"])
    def get_overview(admin: Reader, window: Literal["hour", "day", "week"] = "day") -> Overview:
        """Calls, failures by origin, p50/p95 latency (gateway vs upstream) per route and tool; top clients, users."""
        return admin.operator().overview(admin.workspace, window)

    @api.get("/clients", response_model=ClientPage, tags=["clients"])
    def get_clients(admin: Reader, limit: Limit = 50, before: Cursor = None) -> ClientPage:
        """Every client: registered (DCR), metadata documents (CIMD), pre-registered, service identities."""
        page = admin.operator().clients_of_workspace(admin.workspace, limit=limit, before=before)
        return ClientPage(page.items, page.next_before)

    @api.get("/grants", response_model=GrantPage, tags=["grants"])
    def get_grants(
        admin: Reader,
        limit: Limit = 50,
        before: Cursor = None,
        client_id: Filter = None,
        route_key: Filter = None,
        user_id: Filter = None,
    ) -> GrantPage:
        """The workspace's grants (any status), newest first: user, client, route, scopes, how obtained."""
        page = admin.operator().grants_of_workspace(
            admin.workspace, limit=limit, before=before, client_id=client_id, route_key=route_key, user_id=user_id
        )
        return GrantPage(page.items, page.next_before)

    @api.get("/issuances", response_model=IssuancePage, tags=["issuances"])
    def get_issuances(
        admin: Reader,
        since: Time = None,
        until: Time = None,
        limit: Limit = 50,
        before: Cursor = None,
        client_id: Filter = None,
        user_id: Filter = None,
    ) -> IssuancePage:
        """Every access token issued (never its value): subject, client, resource, scope, token type, expiry."""
        start, end = time_range(admin.now(), since, until)
        page = admin.operator().issuances(
            admin.workspace, since=start, until=end, limit=limit, before=before, client_id=client_id, user_id=user_id
        )
        return IssuancePage(page.items, page.next_before)

    @api.get("/audit", response_model=EventPage, tags=["audit"])
    def get_audit(admin: Reader, filters: Annotated[AuditFilters, Depends()]) -> EventPage:
        """The audit trail, filtered by kind, user, client, route and time, newest first."""
        page = admin.operator().audit_events(_audit_query(admin, filters))
        return EventPage(page.events, page.next_before)

    @api.get("/audit/export", tags=["audit"], response_model=None)
    def export_audit(
        admin: Reader, filters: Annotated[AuditFilters, Depends()], format: Literal["csv", "json"] = "csv"
    ) -> export.Download:
        """The filtered audit trail as a file (CSV or JSON), at most :data:`export.MAX_EVENTS` events."""
        query = _audit_query(admin, filters)
        return export.download(admin.operator(), query, format, admin.workspace)

    @api.get("/funnel", response_model=Funnel, tags=["funnel"])
    def get_funnel(
        admin: Reader, client_id: Annotated[str, Query(min_length=1, max_length=2000)], since: Time = None,
        until: Time = None,
    ) -> Funnel:  # fmt: skip
        """How far a client's sign-ins got: authorize started, signed in, consented, code exchanged, called a tool."""
        start, end = time_range(admin.now(), since, until)
        return admin.operator().funnel(admin.workspace, client_id, since=start, until=end)

    @api.get("/keys", response_model=list[KeyView], tags=["keys"])
    def get_keys(admin: Reader, user_id: Filter = None) -> list[KeyView]:
        """The workspace's gateway API keys (never a key's value)."""
        return admin.operator().keys(admin.workspace, user_id)

    @api.get("/users/{user_id}", response_model=UserAccess, tags=["users"])
    def get_user(admin: Reader, user_id: Annotated[str, Field(min_length=1, max_length=2000)]) -> UserAccess:
        """Everything one user holds: grants, API keys, upstream accounts."""
        return user_access(admin, user_id)

    # --- acting ---------------------------------------------------------------------------------------------

    @api.post("/grants/revoke", response_model=Ended, tags=["grants"])
    def revoke_grant(admin: Actor, body: RevokeGrant) -> Ended:
        """Revoke a grant: its client's next MCP call is 401 and its refresh token is refused."""
        return admin.operator().revoke_grant(_own_grant(admin, body.grant_id), by=admin.acting_as)

    @api.post("/clients/revoke", response_model=list[Ended], tags=["clients"])
    def revoke_client(admin: Actor, body: RevokeClient) -> list[Ended]:
        """Revoke every active grant of a client, and end its registration."""
        _own_client(admin, body.client_id)
        return admin.operator().revoke_client(body.client_id, workspace=admin.workspace, by=admin.acting_as)

    @api.post("/keys", response_model=CreatedKey, status_code=201, tags=["keys"])
    def create_key(admin: Actor, body: CreateKey) -> CreatedKey:
        """A new API key; its value is in this answer, whole, and shown nowhere else."""
        expires = admin.now() + body.expires_in_days * 86400 if body.expires_in_days else None
        request = KeyRequest(
            workspace=admin.workspace, user_id=body.user_id, name=body.name, servers=tuple(body.servers),
            tools=tuple(body.tools), user_groups=tuple(body.groups), expires_at=expires, created_by=admin.acting_as,
        )  # fmt: skip
        return admin.operator().create_key(request)

    @api.post("/keys/revoke", response_model=Ended, tags=["keys"])
    def revoke_key(admin: Actor, body: RevokeKey) -> Ended:
        """Revoke an API key: its next call is 401."""
        _own_key(admin, body.key_id)
        return admin.operator().revoke_key(body.key_id, by=admin.acting_as)

    @api.post("/connections/disconnect", response_model=Ended, tags=["users"])
    def disconnect(admin: Actor, body: Disconnect) -> Ended:
        """Forget a user's upstream account: they connect it again when a call needs it."""
        if body.route_key not in connection_route_keys(admin):
            raise ConsoleRefusal(404, admin.workspace, f"no route {body.route_key!r} with per-user accounts here")
        return admin.operator().disconnect(body.route_key, body.user_id, by=admin.acting_as)

    @api.post("/users/offboard", response_model=OffboardingAnswer, tags=["users"])
    def offboard(admin: Actor, body: Offboard) -> OffboardingAnswer:
        """End all of a user's access: grants, API keys and (unless kept) upstream accounts."""
        result = admin.operator().offboard_user(
            admin.workspace, body.user_id, keep_connections=body.keep_connections, by=admin.acting_as,
            route_keys=connection_route_keys(admin),
        )  # fmt: skip
        return OffboardingAnswer(result.offboarding, list(result.failures))

    return api


# --- shared with the pages ----------------------------------------------------------------------------------


def user_access(admin: Admin, user_id: str) -> UserAccess:
    operator = admin.operator()
    grants = operator.grants_of_workspace(admin.workspace, user_id=user_id, limit=500)
    return UserAccess(
        user_id=user_id,
        grants=grants.items,
        keys=operator.keys(admin.workspace, user_id),
        connections=operator.connections_of_user(connection_route_keys(admin), user_id),
    )


def _audit_query(admin: Admin, filters: AuditFilters) -> AuditQuery:
    start, end = time_range(admin.now(), filters.since, filters.until)
    return AuditQuery(
        admin.workspace, start, end, route_key=filters.route_key, user_id=filters.user_id,
        client_id=filters.client_id, kinds=tuple(filters.kind), limit=filters.limit, before=filters.before,
    )  # fmt: skip


def _own_grant(admin: Admin, grant_id: str) -> str:
    """``grant_id`` if it is a grant of this workspace (an administrator acts on their own workspace only)."""
    view = admin.operator().grant(grant_id)
    if view.workspace != admin.workspace:
        raise ConsoleRefusal(404, admin.workspace, f"no grant {grant_id!r} in this workspace")
    return grant_id


def _own_key(admin: Admin, key_id: str) -> None:
    if all(key.key_id != key_id for key in admin.operator().keys(admin.workspace)):
        raise ConsoleRefusal(404, admin.workspace, f"no key {key_id!r} in this workspace")


def _own_client(admin: Admin, client_id: str) -> None:
    """A client of this workspace: a registration at one of its routes, a configured one, or one holding its
    grants (a metadata document's)."""
    operator = admin.operator()
    if operator.client_workspace(client_id) == admin.workspace:
        return
    if operator.grants_of_workspace(admin.workspace, client_id=client_id, limit=1).items:
        return
    raise ConsoleRefusal(404, admin.workspace, f"no client {client_id!r} in this workspace")


__all__ = ["AUDIT_KINDS", "router", "user_access"]

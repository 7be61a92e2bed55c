"""The operator service: the one implementation of what an administrator looks at and does, whoever asks (the admin
CLI today; the admin console and its JSON API of issue "Admin console" are meant to call it too).

It takes its stores, audit trail, clock and (for the commands that need it) the gateway configuration as arguments,
returns typed views (:mod:`gateway.operations.views`) that cannot carry a secret, prints nothing, and records each
action in the audit trail as done ``by`` whoever the caller says acted. A problem the operator can fix raises
:class:`OperatorError` (:class:`NotFound` for an unknown id) with a message that says what to do; a store failure
raises :class:`~gateway.storage.ports.StorageError`, except in :meth:`OperatorService.offboard_user`, which goes on
with the rest and reports what it could not end (running it again finishes the job: it ends only what is active).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from gateway.api_keys.issuing import KeyRefused, KeyRequest, create_key, revoke_key
from gateway.audit import AuditTrail
from gateway.config import DevLoginProvider, GatewayConfig
from gateway.oauth.authorization import revoke_grant
from gateway.operations import insight
from gateway.operations.insight import ClientRow, Funnel, Issuance, Overview, Window
from gateway.operations.queries import AuditPage, AuditQuery, NotFound, OffboardingResult, OperatorError, Page
from gateway.operations.views import (
    ClientView,
    ConnectionView,
    CreatedKey,
    Ended,
    GrantView,
    KeyView,
    Offboarding,
)
from gateway.storage.ports import (
    ApiKeyStore,
    AuditLog,
    ClientStore,
    GrantStore,
    StorageError,
    UpstreamTokenStore,
    UsageLog,
    listing_position,
)
from gateway.storage.records import ApiKey, Grant
from gateway.upstream.connect_links import SHARED_SUBJECT

T = TypeVar("T")
FUNNEL_EVENTS = 5000
MAX_LISTED = 10_000
REASON_ADMIN = "admin"
REASON_OFFBOARDED = "offboarded"


class OperatorService:
    def __init__(
        self,
        *,
        clients: ClientStore,
        grants: GrantStore,
        upstream_tokens: UpstreamTokenStore,
        api_keys: ApiKeyStore,
        audit_log: AuditLog,
        audit: AuditTrail,
        clock: Callable[[], float] = time.time,
        config: GatewayConfig | None = None,
        usage_log: UsageLog | None = None,
    ) -> None:
        self._clients = clients
        self._grants = grants
        self._upstream_tokens = upstream_tokens
        self._api_keys = api_keys
        self._audit_log = audit_log
        self._audit = audit
        self._clock = clock
        self._config = config
        self._usage_log = usage_log

    def _now(self) -> int:
        return int(self._clock())

    # --- looking -----------------------------------------------------------------------------------------------

    def audit_events(self, query: AuditQuery) -> AuditPage:
        """A page of events: DynamoDB queries of the day partitions in the range, never a scan."""
        events = self._audit_log.events(
            query.workspace, since=query.since, until=query.until, route_key=query.route_key,
            user_id=query.user_id, client_id=query.client_id, kinds=query.kinds, limit=query.limit,
            before=query.before,
        )  # fmt: skip
        full = len(events) >= query.limit > 0
        return AuditPage(events, events[-1].position if full else None)

    def overview(self, workspace: str, window: Window) -> Overview:
        """Calls, failures by origin and latency percentiles per route and tool, and the most active clients and
        users, from the usage rollups: a few queries per day of the window, never the audit events."""
        now = self._now()
        since = now - insight.WINDOW_SECONDS[window]
        usage = self._require_usage()
        tools, callers = usage.rollups(workspace, since_hour=since // 3600, until_hour=now // 3600 + 1)
        return insight.overview(workspace, window, now, tools, callers)

    def clients_of_workspace(self, workspace: str, *, limit: int = 50, before: str | None = None) -> Page[ClientRow]:
        """The workspace's clients: on the first page the configured ones (pre-registered, service identities)
        and those known by a metadata document (from the grants they hold), then every registration (DCR),
        newest first, one index query per page."""
        rows: list[ClientRow] = []
        if before is None:
            if self._config is not None:
                rows += insight.configured_rows(self._config, workspace)
            rows += insight.metadata_document_rows(self._grants.grants_of_workspace(workspace, limit=1000))
        registered = self._clients.clients_of_workspace(workspace, self._now(), limit=limit, before=before)
        rows += [insight.registered_row(client) for client in registered]
        last = registered[-1] if len(registered) >= limit else None
        return Page(rows, listing_position(last.created_at, last.client_id) if last else None)

    def grants_of_workspace(
        self,
        workspace: str,
        *,
        limit: int = 50,
        before: str | None = None,
        client_id: str | None = None,
        route_key: str | None = None,
        user_id: str | None = None,
    ) -> Page[GrantView]:
        """The workspace's grants (any status), newest first: by user through the user index, else through the
        workspace index with the client and route as filters."""
        if user_id:
            grants = sorted(
                (
                    grant
                    for grant in self._grants.grants_of_user(workspace, user_id)
                    if (client_id is None or grant.client_id == client_id)
                    and (route_key is None or grant.route_key == route_key)
                    and (before is None or listing_position(grant.created_at, grant.grant_id) < before)
                ),
                key=lambda grant: listing_position(grant.created_at, grant.grant_id),
                reverse=True,
            )[:limit]
        else:
            grants = self._grants.grants_of_workspace(
                workspace, limit=limit, before=before, client_id=client_id, route_key=route_key
            )
        last = grants[-1] if len(grants) >= limit else None
        return Page(
            [GrantView.of(grant) for grant in grants],
            listing_position(last.created_at, last.grant_id) if last else None,
        )

    def issuances(
        self, workspace: str, *, since: int, until: int, limit: int = 50, before: str | None = None,
        client_id: str | None = None, user_id: str | None = None,
    ) -> Page[Issuance]:  # fmt: skip
        """Every access token issued (``token.issued``, ``token.refreshed``): subject, client, resource, scope,
        token type and expiry; never the token."""
        page = self.audit_events(
            AuditQuery(
                workspace, since, until, user_id=user_id, client_id=client_id, kinds=insight.ISSUANCE_KINDS,
                limit=limit, before=before,
            )
        )  # fmt: skip
        return Page([Issuance.of(event) for event in page.events], page.next_before)

    def funnel(self, workspace: str, client_id: str, *, since: int, until: int) -> Funnel:
        """How far a client's sign-ins got in the range (authorize started → ... → called a tool): its few
        sign-in events from the client index (at most :data:`FUNNEL_EVENTS`), its calls from the usage rollups."""
        events = self._audit_log.events(
            workspace, since=since, until=until, client_id=client_id, kinds=insight.FUNNEL_KINDS,
            limit=FUNNEL_EVENTS,
        )  # fmt: skip
        callers = self._require_usage().caller_rollups(
            workspace, since_day=since // 86400, until_day=until // 86400 + 1
        )
        return insight.funnel(client_id, since, until, events, callers)

    def connections_of_user(self, route_keys: list[str], user_id: str) -> list[ConnectionView]:
        """The user's upstream accounts among ``route_keys`` (the routes whose upstream each user connects): one
        read per route, no scan."""
        found = (self._upstream_tokens.get(route_key, user_id) for route_key in route_keys)
        return [ConnectionView.of(token) for token in found if token is not None]

    def grants_of_user(self, workspace: str, user_id: str) -> list[GrantView]:
        grants = sorted(self._grants.grants_of_user(workspace, user_id), key=lambda grant: grant.created_at)
        return [GrantView.of(grant) for grant in grants]

    def grant(self, grant_id: str) -> GrantView:
        return GrantView.of(self._grant(grant_id))

    def client(self, client_id: str) -> ClientView:
        client = self._clients.get(client_id, self._now())
        if client is None:
            raise NotFound(f"no client {client_id!r} (or its registration expired)")
        return ClientView.of(client)

    def client_workspace(self, client_id: str) -> str | None:
        """The workspace a registered or configured client belongs to (None: neither)."""
        client = self._clients.get(client_id, self._now())
        if client is not None:
            return client.route_key.split("/", 1)[0]
        workspaces = self._config.workspaces.items() if self._config is not None else ()
        return next((name for name, ws in workspaces if any(c.client_id == client_id for c in ws.clients)), None)

    def connection(self, route_key: str, subject: str) -> ConnectionView:
        token = self._upstream_tokens.get(route_key, subject)
        if token is None:
            raise NotFound(f"no upstream connection of {subject!r} at {route_key!r}")
        return ConnectionView.of(token)

    def keys(self, workspace: str, user_id: str | None = None) -> list[KeyView]:
        if user_id:
            keys = self._api_keys.keys_of_user(workspace, user_id)
        else:
            keys = self._api_keys.keys_of_workspace(workspace)
        return [KeyView.of(key) for key in sorted(keys, key=lambda key: key.created_at)]

    # --- acting --------------------------------------------------------------------------------------------------

    def revoke_grant(self, grant_id: str, *, by: str = REASON_ADMIN) -> Ended:
        """The client's next MCP call is 401, its refresh token is refused."""
        return self._revoke_grant(self._grant(grant_id), REASON_ADMIN, by)

    def revoke_client(self, client_id: str, *, workspace: str | None = None, by: str = REASON_ADMIN) -> list[Ended]:
        """Every active grant of the client, and its registration (it can neither sign in nor refresh); with
        ``workspace``, only what the client holds there (a workspace's administrator acts on theirs alone)."""
        now = self._now()
        client = self._clients.get(client_id, now)
        if client is not None and workspace is not None and client.route_key.split("/", 1)[0] != workspace:
            client = None
        # A workspace's grants of the client through its index; without one, every grant of the client (a Scan: the
        # CLI's operator credentials may, the admin function's role may not).
        held = (
            self._grants.grants_of_client(client_id)
            if workspace is None
            else self._grants.grants_of_workspace(workspace, client_id=client_id, limit=MAX_LISTED)
        )
        grants = [grant for grant in held if grant.status == "active"]
        if client is None and not grants:
            raise NotFound(f"no client {client_id!r} with a registration or an active grant")
        ended = [self._revoke_grant(grant, REASON_ADMIN, by) for grant in grants]
        if client is not None:
            self._clients.touch(client_id, now, now)  # its registration expires now
            workspace = client.route_key.split("/", 1)[0]
            self._audit.record(
                "client.revoked", workspace=workspace, route_key=client.route_key, client_id=client_id, by=by
            )
            ended.append(Ended("client", client_id, workspace, client.route_key, None, client_id, client.client_name))
        return ended

    def disconnect(self, route_key: str, subject: str, *, by: str = REASON_ADMIN) -> Ended:
        """Forget an upstream connection: the user connects again on the next call that needs it."""
        if self._upstream_tokens.get(route_key, subject) is None:
            raise NotFound(f"no upstream connection of {subject!r} at {route_key!r}")
        return self._disconnect(route_key, subject, by)

    def create_key(self, request: KeyRequest) -> CreatedKey:
        """A new API key acting as ``request.user_id``; its value is in the result and nowhere else."""
        config = self._require_config()
        try:
            key, value = create_key(self._api_keys, self._audit, config, request, self._now())
        except KeyRefused as problem:
            raise OperatorError(str(problem)) from None
        return CreatedKey(KeyView.of(key), value, tuple(self._owner_warnings(config, request)))

    def revoke_key(self, key_id: str, *, by: str = REASON_ADMIN) -> Ended:
        """The key's next call is 401."""
        key = self._api_keys.get_key(key_id)
        if key is None:
            raise NotFound(f"no key {key_id!r}")
        return self._revoke_key(key, by)

    def offboard_user(
        self,
        workspace: str,
        user_id: str,
        *,
        keep_connections: bool = False,
        by: str = REASON_ADMIN,
        route_keys: list[str] | None = None,
    ) -> OffboardingResult:
        """End all of a user's access in a workspace: every active grant (the clients they authorized, and
        ``client_credentials`` grants of a service identity), every active API key they own, and, unless
        ``keep_connections``, every upstream account connected for them: at ``route_keys`` (one read each: the
        console, whose role may not scan) or wherever a row of theirs is (a Scan, which also finds routes no longer
        configured: the CLI). Goes on past a failure and reports it; what was ended stays ended, and running it
        again ends the rest."""
        if not workspace or not user_id:
            raise OperatorError("name the workspace and the user")
        ended: list[Ended] = []
        kept: list[str] = []
        failures: list[str] = []

        def attempt(what: str, action: Callable[[], Ended]) -> None:
            try:
                ended.append(action())
            except StorageError as problem:
                failures.append(f"{what} not ended: {problem}")

        grants = _listed(failures, "the user's grants", lambda: self._grants.grants_of_user(workspace, user_id))
        for grant in grants:
            if grant.status == "active":
                attempt(f"grant {grant.grant_id}", partial(self._revoke_grant, grant, REASON_OFFBOARDED, by))
        keys = _listed(failures, "the user's API keys", lambda: self._api_keys.keys_of_user(workspace, user_id))
        for key in keys:
            if key.status == "active":
                attempt(f"API key {key.key_id}", partial(self._revoke_key, key, by))

        def connected() -> list[str]:
            if route_keys is None:
                return self._upstream_tokens.routes_of_subject(workspace, user_id)
            return [key for key in route_keys if self._upstream_tokens.get(key, user_id) is not None]

        routes = _listed(failures, "the user's upstream connections", connected)
        for route_key in routes:
            if keep_connections or user_id == SHARED_SUBJECT:  # "shared" rows are routes' shared accounts
                kept.append(route_key)
            else:
                attempt(f"connection {route_key}", partial(self._disconnect, route_key, user_id, by))
        offboarding = Offboarding(workspace, user_id, tuple(ended), tuple(kept))
        self._audit.record(
            "user.offboarded", workspace=workspace, user_id=user_id, by=by,
            grants=offboarding.count("grant"), api_keys=offboarding.count("api_key"),
            connections=offboarding.count("connection"), kept_connections=len(kept) or None,
            failures=len(failures) or None,
        )  # fmt: skip
        return OffboardingResult(offboarding, tuple(failures))

    # --- the one place each change is made ------------------------------------------------------------------

    def _grant(self, grant_id: str) -> Grant:
        grant = self._grants.get_grant(grant_id)
        if grant is None:
            raise NotFound(f"no grant {grant_id!r}")
        return grant

    def _revoke_grant(self, grant: Grant, reason: str, by: str) -> Ended:
        # The proxy reads the grant's status per call: its access tokens and its refresh token stop working now.
        revoke_grant(self._grants, self._audit, grant, self._now(), reason=reason, by=by)
        return Ended("grant", grant.grant_id, grant.workspace, grant.route_key, grant.user_id, grant.client_id)

    def _revoke_key(self, key: ApiKey, by: str) -> Ended:
        revoke_key(self._api_keys, self._audit, key, self._now(), by=by)
        return Ended("api_key", key.key_id, key.workspace, None, key.user_id, key.key_id, key.name)

    def _disconnect(self, route_key: str, subject: str, by: str) -> Ended:
        self._upstream_tokens.delete(route_key, subject)
        workspace = route_key.split("/", 1)[0]
        self._audit.record("upstream.disconnected", workspace=workspace, route_key=route_key, user_id=subject, by=by)
        return Ended("connection", route_key, workspace, route_key, subject)

    def _require_usage(self) -> UsageLog:
        if self._usage_log is None:
            raise OperatorError("this needs the usage rollups (the audit table)")
        return self._usage_log

    def _require_config(self) -> GatewayConfig:
        if self._config is None:
            raise OperatorError("this needs the gateway configuration: --config FILE (or --local, or GATEWAY_CONFIG)")
        return self._config

    @staticmethod
    def _owner_warnings(config: GatewayConfig, request: KeyRequest) -> list[str]:
        """Where the workspace knows its users (the development login lists them), a key for someone else acts as
        a user nobody signs in as: usually a typo."""
        workspace = config.workspaces[request.workspace]
        provider = workspace.identity_provider
        if not isinstance(provider, DevLoginProvider):
            return []
        known = {user.id for user in provider.users}
        services = {client.service_identity for client in workspace.clients if client.service_identity}
        if request.user_id in known or request.user_id in services:
            return []
        return [
            f"workspace {request.workspace!r} signs in with the development login, which has no user "
            f"{request.user_id!r} (it knows {', '.join(sorted(known))}): the key acts as a user nobody signs in as"
        ]


def _listed(failures: list[str], what: str, read: Callable[[], list[T]]) -> list[T]:
    """What ``read`` returns; nothing (and a line in ``failures``) when the store failed."""
    try:
        return read()
    except StorageError as problem:
        failures.append(f"{what} could not be read: {problem}")
        return []

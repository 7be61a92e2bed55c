"""Storage ports. Each method's docstring is its contract; both adapters (memory, DynamoDB) honour it and are run
against the same contract tests (tests/integration/test_storage_contract.py).

Times are integer Unix seconds passed in by the caller, so expiry is decided by the domain, not the clock of the
store. Items that expire carry a TTL attribute *and* are checked on read, because TTL deletion is lazy.
"""

from __future__ import annotations

from typing import Protocol

from gateway.storage.records import (
    ApiKey,
    AuditEvent,
    AuthorizationCode,
    CallerRollup,
    Consent,
    Grant,
    PendingAuthorization,
    RegisteredClient,
    ToolCall,
    ToolRollup,
    UpstreamToken,
)


def listing_position(created_at: int, item_id: str) -> str:
    """Where a grant, a key or a client sorts in its workspace's listing (newest first): the cursor of the next page."""
    return f"{created_at:012d}#{item_id}"


class StorageError(Exception):
    """The store failed (throttled, unreachable): callers answer 503 and nothing was half-written."""


class AlreadyExists(Exception):
    """A create found the key taken."""


class CodeNotRedeemable(Exception):
    """The code is unknown, expired, or was redeemed before. ``replayed`` holds the earlier redemption, if any."""

    def __init__(self, replayed: AuthorizationCode | None) -> None:
        super().__init__("authorization code not redeemable")
        self.replayed = replayed


class ClientStore(Protocol):
    def create(self, client: RegisteredClient) -> None:
        """Store a new client. MUST raise :class:`AlreadyExists` if the ``client_id`` is taken (conditional)."""

    def get(self, client_id: str, now: int) -> RegisteredClient | None:
        """The client, or None if unknown or past its ``expires_at``."""

    def touch(self, client_id: str, last_used_at: int, expires_at: int | None) -> None:
        """Record a use (slides the unused-registration expiry). No-op for an unknown client."""

    def clients_of_workspace(
        self, workspace: str, now: int, *, limit: int = 100, before: str | None = None
    ) -> list[RegisteredClient]:
        """The registered clients of the workspace's routes, newest first, at most ``limit``, unexpired at ``now``;
        with ``before`` (a :func:`listing_position`) only those that sort before it. One index query per page."""


class GrantStore(Protocol):
    # pending authorizations ------------------------------------------------------------------------------------
    def put_pending(self, pending: PendingAuthorization) -> None:
        """Create or replace a pending authorization."""

    def get_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        """The pending authorization, or None if unknown or expired."""

    def delete_pending(self, pending_id: str) -> None:
        """Forget a pending authorization (idempotent)."""

    def take_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        """Remove the pending authorization and return it as it was; None if unknown, expired or already taken.

        MUST be single-use under concurrency (a conditional delete): of N concurrent calls for one pending
        authorization at most one returns it, so a form submitted twice issues one answer.
        """

    # authorization codes ----------------------------------------------------------------------------------------
    def put_code(self, code: AuthorizationCode) -> None:
        """Store a new code (keyed by its hash)."""

    def get_code(self, code_hash: str, now: int) -> AuthorizationCode | None:
        """The code if known, expired or not, redeemed or not (callers decide), None if unknown or TTL-deleted."""

    def redeem_code(self, code_hash: str, grant: Grant, consent: Consent | None, now: int) -> None:
        """Atomically mark the code redeemed, create ``grant`` and store ``consent``, or write nothing.

        MUST be single-use under concurrency: of N concurrent calls for one code at most one succeeds; the others
        raise :class:`CodeNotRedeemable` (with ``replayed`` set once the code is known to be redeemed). Also raises
        it for an unknown or expired code.
        """

    # grants -------------------------------------------------------------------------------------------------------
    def get_grant(self, grant_id: str) -> Grant | None:
        """The grant in any status, or None."""

    def create_grant(self, grant: Grant) -> None:
        """Store a grant made without a code (``client_credentials``). MUST raise :class:`AlreadyExists` if the
        ``grant_id`` is taken (conditional)."""

    def advance_refresh(self, grant_id: str, from_generation: int, rotated_at: int, idle_expires_at: int) -> bool:
        """Move the grant's refresh generation from ``from_generation`` to ``from_generation + 1``.

        MUST be conditional: returns False (and writes nothing) unless the grant is active and still at
        ``from_generation``.
        """

    def revoke_grant(self, grant_id: str, now: int, reason: str) -> None:
        """Mark the grant revoked (idempotent) and forget its remembered consent."""

    def grants_of_user(self, workspace: str, user_id: str) -> list[Grant]:
        """Every grant of a user in a workspace, in any status."""

    def grants_of_client(self, client_id: str) -> list[Grant]:
        """Every grant of a client, in any status. For administration: it may read the whole table."""

    def grants_of_workspace(
        self,
        workspace: str,
        *,
        limit: int = 100,
        before: str | None = None,
        client_id: str | None = None,
        route_key: str | None = None,
    ) -> list[Grant]:
        """The workspace's grants in any status that match the filters given, newest first, at most ``limit``; with
        ``before`` (a :func:`listing_position`) only those that sort before it. Index queries, never a scan."""

    # consent ------------------------------------------------------------------------------------------------------
    def get_consent(self, route_key: str, client_id: str, user_id: str) -> Consent | None:
        """The remembered approval, or None."""


class SingleUseStore(Protocol):
    """Values that may be presented once: the ``jti`` of a client assertion (RFC 7523 §3), of an ID-JAG and of a
    DPoP proof (RFC 9449 §11.1). Keys are chosen by the caller, bounded in length (a hash of what is remembered)."""

    def use(self, key: str, expires_at: int, now: int) -> bool:
        """Record ``key`` as used until ``expires_at``. True the first time; False when it was recorded before and
        that record has not expired (``expires_at > now``), and then nothing is written.

        MUST be atomic across containers (a conditional write): of N concurrent calls for one key, at most one
        returns True. The record may be forgotten after ``expires_at`` (TTL).
        """


class ApiKeyStore(Protocol):
    """Gateway API keys, looked up by key id (the secret's hash is in the record; callers compare it)."""

    def create_key(self, key: ApiKey) -> None:
        """Store a new key. MUST raise :class:`AlreadyExists` if the ``key_id`` is taken (conditional)."""

    def get_key(self, key_id: str) -> ApiKey | None:
        """The key in any status (expired and revoked ones too), or None. One strongly consistent read."""

    def revoke_key(self, key_id: str, now: int) -> None:
        """Mark the key revoked (idempotent: an earlier ``revoked_at`` stays). No-op for an unknown key."""

    def keys_of_user(self, workspace: str, user_id: str) -> list[ApiKey]:
        """Every key a user owns in a workspace, in any status."""

    def keys_of_workspace(self, workspace: str) -> list[ApiKey]:
        """Every key of a workspace, in any status. For administration: it may read the whole table."""


class RateLimiter(Protocol):
    """Fixed-window request counters shared by every container (docs/non-interactive.md, "Rate limits")."""

    def take(self, bucket: str, limit: int, window_ends_at: int) -> bool:
        """Count one request in ``bucket`` (a name for the limit, the caller and the window) unless it already
        holds ``limit``; the counter may be forgotten after ``window_ends_at`` (TTL).

        MUST be atomic across containers: of N concurrent calls on a bucket holding ``limit - k``, exactly ``k``
        return True. Returns False, and counts nothing, when the bucket is full.
        """


class UpstreamTokenStore(Protocol):
    def get(self, route_key: str, subject: str) -> UpstreamToken | None:
        """The stored credential, or None."""

    def put(self, token: UpstreamToken, expected_version: int | None) -> bool:
        """Write ``token`` if the stored version equals ``expected_version`` (None: only if absent).

        MUST be conditional; returns False and writes nothing when another writer got there first. A successful
        write clears the refresh lease.
        """

    def acquire_lease(self, route_key: str, subject: str, owner: str, now: int, until: int) -> bool:
        """Take the refresh lease unless another owner holds an unexpired one. MUST be conditional."""

    def delete(self, route_key: str, subject: str) -> None:
        """Forget the credential (idempotent)."""

    def routes_of_subject(self, workspace: str, subject: str) -> list[str]:
        """The route keys (``workspace/server``, ``workspace/server/upstream``) of ``workspace`` where a credential
        of ``subject`` is stored, whatever the configuration says today. For administration (offboarding): it may
        read the whole table."""


class AuditLog(Protocol):
    def append(self, event: AuditEvent) -> None:
        """Store an event. Events are never changed; ``event_id`` is unique (a repeated append is idempotent)."""

    def events(
        self,
        workspace: str,
        *,
        since: int,
        until: int,
        route_key: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
        kinds: tuple[str, ...] = (),
        limit: int = 100,
        before: str | None = None,
    ) -> list[AuditEvent]:
        """The workspace's events with ``since <= at < until`` that match every filter given (``kinds``: any of
        them; empty: every kind), newest first, at most ``limit``; with ``before`` (an event's ``position``, e.g. the
        last of the previous page) only those that sort before it. Expired events (``expires_at <= until``) may or
        may not be returned. MUST read by key ranges (a user's, a client's, a kind's or the workspace's day), never
        the whole table."""


class UsageLog(Protocol):
    """Pre-aggregated usage of the MCP routes (``docs/storage.md``, "Usage rollups"): counters added to, never
    rewritten, so any number of containers count into the same items."""

    def add_call(
        self, call: ToolCall, gateway_bucket: int, upstream_bucket: int, origin: str | None, expires_at: int
    ) -> None:
        """Count one call into its tool's hour and its caller's day (``origin``: the failure's origin, None when it
        succeeded; the buckets: :func:`gateway.usage.bucket` of the two latencies). MUST be additive (``ADD``)."""

    def tool_rollups(self, workspace: str, *, since_hour: int, until_hour: int) -> list[ToolRollup]:
        """Every tool's rollup of the workspace with ``since_hour <= hour < until_hour``."""

    def caller_rollups(self, workspace: str, *, since_day: int, until_day: int) -> list[CallerRollup]:
        """Every (client, user) rollup of the workspace with ``since_day <= day < until_day``."""

    def rollups(
        self, workspace: str, *, since_hour: int, until_hour: int
    ) -> tuple[list[ToolRollup], list[CallerRollup]]:
        """:meth:`tool_rollups` of those hours and :meth:`caller_rollups` of the days they fall in, together (both
        kinds share a day's partition: one read per day, not two)."""

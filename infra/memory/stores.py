"""In-memory adapters of the storage ports: for unit tests and single-process use. Thread-safe."""

from __future__ import annotations

import dataclasses
import threading

from gateway.storage.ports import AlreadyExists, CodeNotRedeemable, listing_position
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


class MemoryClientStore:
    def __init__(self) -> None:
        self._items: dict[str, RegisteredClient] = {}
        self._lock = threading.Lock()

    def create(self, client: RegisteredClient) -> None:
        with self._lock:
            if client.client_id in self._items:
                raise AlreadyExists(client.client_id)
            self._items[client.client_id] = client

    def get(self, client_id: str, now: int) -> RegisteredClient | None:
        client = self._items.get(client_id)
        if client is None or (client.expires_at is not None and client.expires_at <= now):
            return None
        return client

    def touch(self, client_id: str, last_used_at: int, expires_at: int | None) -> None:
        with self._lock:
            client = self._items.get(client_id)
            if client is not None:
                self._items[client_id] = dataclasses.replace(client, last_used_at=last_used_at, expires_at=expires_at)

    def clients_of_workspace(
        self, workspace: str, now: int, *, limit: int = 100, before: str | None = None
    ) -> list[RegisteredClient]:
        with self._lock:
            found = [
                client
                for client in self._items.values()
                if client.route_key.split("/", 1)[0] == workspace
                and (client.expires_at is None or client.expires_at > now)
                and (before is None or listing_position(client.created_at, client.client_id) < before)
            ]
        found.sort(key=lambda client: listing_position(client.created_at, client.client_id), reverse=True)
        return found[:limit]


def _consent_key(route_key: str, client_id: str, user_id: str) -> tuple[str, str, str]:
    return (route_key, client_id, user_id)


class MemoryGrantStore:
    def __init__(self) -> None:
        self._pending: dict[str, PendingAuthorization] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, Grant] = {}
        self._consents: dict[tuple[str, str, str], Consent] = {}
        self._lock = threading.Lock()

    def put_pending(self, pending: PendingAuthorization) -> None:
        self._pending[pending.pending_id] = pending

    def get_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        pending = self._pending.get(pending_id)
        return pending if pending is not None and pending.expires_at > now else None

    def delete_pending(self, pending_id: str) -> None:
        self._pending.pop(pending_id, None)

    def take_pending(self, pending_id: str, now: int) -> PendingAuthorization | None:
        with self._lock:
            pending = self._pending.pop(pending_id, None)
        return pending if pending is not None and pending.expires_at > now else None

    def put_code(self, code: AuthorizationCode) -> None:
        self._codes[code.code_hash] = code

    def get_code(self, code_hash: str, now: int) -> AuthorizationCode | None:
        return self._codes.get(code_hash)

    def redeem_code(self, code_hash: str, grant: Grant, consent: Consent | None, now: int) -> None:
        with self._lock:
            code = self._codes.get(code_hash)
            if code is None or code.expires_at <= now:
                raise CodeNotRedeemable(None)
            if code.redeemed_at is not None:
                raise CodeNotRedeemable(code)
            if grant.grant_id in self._grants:
                raise AlreadyExists(grant.grant_id)
            self._codes[code_hash] = dataclasses.replace(code, redeemed_at=now)
            self._grants[grant.grant_id] = grant
            if consent is not None:
                self._consents[_consent_key(consent.route_key, consent.client_id, consent.user_id)] = consent

    def get_grant(self, grant_id: str) -> Grant | None:
        return self._grants.get(grant_id)

    def create_grant(self, grant: Grant) -> None:
        with self._lock:
            if grant.grant_id in self._grants:
                raise AlreadyExists(grant.grant_id)
            self._grants[grant.grant_id] = grant

    def advance_refresh(self, grant_id: str, from_generation: int, rotated_at: int, idle_expires_at: int) -> bool:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None or grant.status != "active" or grant.refresh_generation != from_generation:
                return False
            self._grants[grant_id] = dataclasses.replace(
                grant, refresh_generation=from_generation + 1, rotated_at=rotated_at, idle_expires_at=idle_expires_at
            )
            return True

    def revoke_grant(self, grant_id: str, now: int, reason: str) -> None:
        with self._lock:
            grant = self._grants.get(grant_id)
            if grant is None:
                return
            if grant.status == "active":
                self._grants[grant_id] = dataclasses.replace(
                    grant, status="revoked", revoked_at=now, revoked_reason=reason
                )
            key = _consent_key(grant.route_key, grant.client_id, grant.user_id)
            consent = self._consents.get(key)
            if consent is not None and consent.grant_id == grant_id:
                del self._consents[key]

    def grants_of_user(self, workspace: str, user_id: str) -> list[Grant]:
        return [g for g in self._grants.values() if g.workspace == workspace and g.user_id == user_id]

    def grants_of_client(self, client_id: str) -> list[Grant]:
        return [g for g in self._grants.values() if g.client_id == client_id]

    def grants_of_workspace(
        self,
        workspace: str,
        *,
        limit: int = 100,
        before: str | None = None,
        client_id: str | None = None,
        route_key: str | None = None,
    ) -> list[Grant]:
        found = [
            grant
            for grant in list(self._grants.values())
            if grant.workspace == workspace
            and (before is None or listing_position(grant.created_at, grant.grant_id) < before)
            and (client_id is None or grant.client_id == client_id)
            and (route_key is None or grant.route_key == route_key)
        ]
        found.sort(key=lambda grant: listing_position(grant.created_at, grant.grant_id), reverse=True)
        return found[:limit]

    def get_consent(self, route_key: str, client_id: str, user_id: str) -> Consent | None:
        return self._consents.get(_consent_key(route_key, client_id, user_id))


class MemoryApiKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def create_key(self, key: ApiKey) -> None:
        with self._lock:
            if key.key_id in self._keys:
                raise AlreadyExists(key.key_id)
            self._keys[key.key_id] = key

    def get_key(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def revoke_key(self, key_id: str, now: int) -> None:
        with self._lock:
            key = self._keys.get(key_id)
            if key is not None and key.status == "active":
                self._keys[key_id] = dataclasses.replace(key, status="revoked", revoked_at=now)

    def keys_of_user(self, workspace: str, user_id: str) -> list[ApiKey]:
        return [k for k in self._keys.values() if k.workspace == workspace and k.user_id == user_id]

    def keys_of_workspace(self, workspace: str) -> list[ApiKey]:
        return [k for k in self._keys.values() if k.workspace == workspace]


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, bucket: str, limit: int, window_ends_at: int) -> bool:
        with self._lock:
            count = self._counts.get(bucket, 0)
            if count >= limit:
                return False
            self._counts[bucket] = count + 1
            return True


class MemorySingleUseStore:
    """Used values until they expire; expired ones are dropped when the store grows (a test's few thousand)."""

    def __init__(self) -> None:
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def use(self, key: str, expires_at: int, now: int) -> bool:
        with self._lock:
            if self._used.get(key, 0) > now:
                return False
            if len(self._used) > 10_000:
                self._used = {k: until for k, until in self._used.items() if until > now}
            self._used[key] = expires_at
            return True


class MemoryUpstreamTokenStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], UpstreamToken] = {}
        self._lock = threading.Lock()

    def get(self, route_key: str, subject: str) -> UpstreamToken | None:
        return self._items.get((route_key, subject))

    def put(self, token: UpstreamToken, expected_version: int | None) -> bool:
        with self._lock:
            key = (token.route_key, token.subject)
            current = self._items.get(key)
            if (current.version if current is not None else None) != expected_version:
                return False
            self._items[key] = dataclasses.replace(token, lease_owner=None, lease_expires_at=None)
            return True

    def acquire_lease(self, route_key: str, subject: str, owner: str, now: int, until: int) -> bool:
        with self._lock:
            current = self._items.get((route_key, subject))
            if current is None:
                return False
            held = current.lease_owner not in (None, owner) and (current.lease_expires_at or 0) > now
            if held:
                return False
            self._items[(route_key, subject)] = dataclasses.replace(current, lease_owner=owner, lease_expires_at=until)
            return True

    def delete(self, route_key: str, subject: str) -> None:
        self._items.pop((route_key, subject), None)

    def routes_of_subject(self, workspace: str, subject: str) -> list[str]:
        with self._lock:
            return sorted(route for route, who in self._items if who == subject and route.startswith(f"{workspace}/"))


class MemoryAuditLog:
    def __init__(self) -> None:
        self._events: dict[str, AuditEvent] = {}
        self._lock = threading.Lock()

    def append(self, event: AuditEvent) -> None:
        with self._lock:
            self._events[event.event_id] = event

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
        with self._lock:
            found = [
                event
                for event in self._events.values()
                if event.workspace == workspace
                and since <= event.at < until
                and (before is None or event.position < before)
                and (route_key is None or event.route_key == route_key)
                and (user_id is None or event.user_id == user_id)
                and (client_id is None or event.client_id == client_id)
                and (not kinds or event.kind in kinds)
            ]
        return sorted(found, key=lambda event: (event.at, event.event_id), reverse=True)[:limit]


class MemoryUsageLog:
    """The usage rollups in memory, counted as the DynamoDB adapter counts them."""

    def __init__(self) -> None:
        self._tools: dict[tuple[str, int, str, str], ToolRollup] = {}
        self._callers: dict[tuple[str, int, str, str], CallerRollup] = {}
        self._lock = threading.Lock()

    def add_call(
        self, call: ToolCall, gateway_bucket: int, upstream_bucket: int, origin: str | None, expires_at: int
    ) -> None:
        hour, day = call.at // 3600, call.at // 86400
        gateway_ms = max(call.total_ms - call.upstream_ms, 0.0)
        with self._lock:
            key = (call.workspace, hour, call.route_key, call.tool)
            old = self._tools.get(key) or ToolRollup(call.workspace, hour, call.route_key, call.tool, 0, {}, {}, {})
            errors = dict(old.errors)
            if origin is not None:
                errors[origin] = errors.get(origin, 0) + 1
            gateway = {**old.gateway_histogram, gateway_bucket: old.gateway_histogram.get(gateway_bucket, 0) + 1}
            upstream = {**old.upstream_histogram, upstream_bucket: old.upstream_histogram.get(upstream_bucket, 0) + 1}
            self._tools[key] = dataclasses.replace(
                old, calls=old.calls + 1, errors=errors, gateway_histogram=gateway, upstream_histogram=upstream,
                gateway_ms=old.gateway_ms + gateway_ms, upstream_ms=old.upstream_ms + call.upstream_ms,
            )  # fmt: skip
            who = (call.workspace, day, call.client_id, call.user_id)
            seen = self._callers.get(who) or CallerRollup(
                call.workspace, day, call.client_id, call.user_id, 0, 0, {}, 0
            )
            hours = {**seen.hours, hour % 24: seen.hours.get(hour % 24, 0) + 1}
            failed = origin is not None
            error_hours = (
                {**seen.error_hours, hour % 24: seen.error_hours.get(hour % 24, 0) + 1} if failed else seen.error_hours
            )
            self._callers[who] = dataclasses.replace(
                seen, calls=seen.calls + 1, errors=seen.errors + failed, hours=hours, last_at=call.at,
                error_hours=error_hours,
            )  # fmt: skip

    def tool_rollups(self, workspace: str, *, since_hour: int, until_hour: int) -> list[ToolRollup]:
        with self._lock:
            return [r for r in self._tools.values() if r.workspace == workspace and since_hour <= r.hour < until_hour]

    def caller_rollups(self, workspace: str, *, since_day: int, until_day: int) -> list[CallerRollup]:
        with self._lock:
            return [r for r in self._callers.values() if r.workspace == workspace and since_day <= r.day < until_day]

    def rollups(
        self, workspace: str, *, since_hour: int, until_hour: int
    ) -> tuple[list[ToolRollup], list[CallerRollup]]:
        return (
            self.tool_rollups(workspace, since_hour=since_hour, until_hour=until_hour),
            self.caller_rollups(workspace, since_day=since_hour // 24, until_day=(until_hour - 1) // 24 + 1),
        )

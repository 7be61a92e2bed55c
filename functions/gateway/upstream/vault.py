"""The upstream credential vault: token sets encrypted at rest, cached decrypted in the warm container, refreshed
before they expire by one container at a time.

**At rest.** Each credential is one ``upstream_tokens`` row (route, subject) whose ``ciphertext`` is the token set
sealed by a :class:`~gateway.upstream.cipher.TokenCipher` under the context ``{workspace, server, subject}`` (the
subject is the user id, or ``shared``), so a row copied to another user or route fails to decrypt. Every write is
conditional on the row's ``version``.

**Warm path.** A decrypted token set is kept in memory with the row version it came from. Within
``cache_seconds`` it is used without any read; after that the row is read again (one DynamoDB read) and decrypted
only when the row changed (its version, or its ciphertext: a credential connected again after a delete starts at
version 1 again) — so a warm container makes no KMS call for an unchanged credential. A credential
deleted elsewhere (a failed refresh, a disconnect) is noticed within ``cache_seconds``.

**Refresh.** Within ``refresh_skew_seconds`` of expiry (or after the upstream answered 401) the token set is
refreshed. Containers that refresh one token at once would present the same refresh token twice, which rotating
servers treat as reuse and answer by revoking the whole family (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2). So the
refresher first takes the row's lease (a conditional update, :meth:`UpstreamTokenStore.acquire_lease`); the others
wait briefly and re-read until the row's version moves. The lease holder's write clears the lease; a lease whose
holder died expires after ``lease_seconds``. A refresh the server refuses with ``invalid_grant`` (or the client is no
longer known) deletes the credential: the user must connect again (:class:`CredentialRevoked`).

**Off the event loop.** The store and the cipher are synchronous (DynamoDB, KMS): every call the async methods make
to them runs in a worker thread (``asyncio.to_thread``), so a cache miss inside a fan-out (a virtual route's
upstreams, called concurrently) never blocks the other calls in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gateway.crypto.hashing import random_token
from gateway.storage.ports import UpstreamTokenStore
from gateway.storage.records import AuditKind, UpstreamToken
from gateway.upstream.cipher import DecryptionFailed, TokenCipher, encryption_context
from gateway.upstream.oauth_flow import TokenEndpointError
from gateway.upstream.token_set import TokenSet

if TYPE_CHECKING:
    from gateway.audit import AuditTrail

logger = logging.getLogger("gateway.upstream.vault")

Refresher = Callable[[TokenSet], Awaitable[TokenSet]]
Revoker = Callable[[TokenSet], Awaitable[bool]]


class NotConnected(Exception):
    """No usable credential is stored for this subject (never connected, deleted, or unreadable)."""


class CredentialRevoked(NotConnected):
    """The upstream refused to refresh the credential (revoked or expired grant); it has been deleted."""


class RefreshUnavailable(Exception):
    """The credential could not be refreshed right now (authorization server unreachable, or another container's
    refresh did not finish in time) and the stored access token is expired. Transient: retry later."""


@dataclass(slots=True)
class _Cached:
    version: int
    ciphertext: bytes
    """The row's ciphertext it came from: a credential deleted and connected again starts at version 1 again, and
    only the ciphertext (a fresh nonce per write) tells that row from the one cached before."""
    tokens: TokenSet
    checked_at: float


class UpstreamVault:
    def __init__(
        self,
        store: UpstreamTokenStore,
        cipher: TokenCipher,
        refresher: Refresher,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        cache_seconds: float = 30.0,
        refresh_skew_seconds: int = 60,
        lease_seconds: int = 20,
        wait_seconds: float = 8.0,
        poll_seconds: float = 0.1,
        audit: AuditTrail | None = None,
        revoker: Revoker | None = None,
    ) -> None:
        self._audit = audit
        self._revoker = revoker
        self._store = store
        self._cipher = cipher
        self._refresher = refresher
        self._clock = clock
        self._sleep = sleep
        self.cache_seconds = cache_seconds
        self.refresh_skew_seconds = refresh_skew_seconds
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._cache: dict[tuple[str, str], _Cached] = {}

    # --- reading ----------------------------------------------------------------------------------------------

    def is_connected(self, route_key: str, subject: str) -> bool:
        """Whether a credential is stored (not whether the upstream still honours it)."""
        return self._store.get(route_key, subject) is not None

    async def current(self, route_key: str, subject: str) -> TokenSet:
        """A token set to use now, refreshed first if it is about to expire.

        Raises :class:`NotConnected` (:class:`CredentialRevoked`), :class:`RefreshUnavailable`, ``StorageError``.
        """
        key = (route_key, subject)
        now = self._clock()
        cached = self._cache.get(key)
        fresh = cached is not None and now - cached.checked_at < self.cache_seconds
        if cached is not None and fresh and not cached.tokens.refresh_due(int(now), self.refresh_skew_seconds):
            return cached.tokens
        row, tokens = await asyncio.to_thread(self._load, route_key, subject)
        if not tokens.refresh_due(int(now), self.refresh_skew_seconds):
            return tokens
        return await self._refresh(row, tokens, rejected=None)

    async def after_unauthorized(self, route_key: str, subject: str, rejected: TokenSet | None) -> TokenSet:
        """The upstream answered 401 to ``rejected``: a newer token set if another writer stored one, else a
        refreshed one. Raises like :meth:`current`."""
        row, tokens = await asyncio.to_thread(self._load, route_key, subject)
        if rejected is not None and tokens.access_token != rejected.access_token:
            return tokens
        return await self._refresh(row, tokens, rejected=tokens)

    def _load(self, route_key: str, subject: str) -> tuple[UpstreamToken, TokenSet]:
        key = (route_key, subject)
        row = self._store.get(route_key, subject)
        if row is None:
            self._cache.pop(key, None)
            raise NotConnected(f"no upstream credential for {route_key}")
        cached = self._cache.get(key)
        if cached is not None and cached.version == row.version and cached.ciphertext == row.ciphertext:
            cached.checked_at = self._clock()
            return row, self._row_expiry(row, cached)
        try:
            tokens = TokenSet.from_bytes(self._cipher.decrypt(row.ciphertext, encryption_context(route_key, subject)))
        except (DecryptionFailed, ValueError, TypeError, KeyError):
            logger.error("upstream credential of %s does not decrypt under its context; treating as absent", route_key)
            self._cache.pop(key, None)
            raise NotConnected(f"the upstream credential for {route_key} is unreadable") from None
        cached = _Cached(row.version, row.ciphertext, tokens, self._clock())
        self._cache[key] = cached
        return row, self._row_expiry(row, cached)

    @staticmethod
    def _row_expiry(row: UpstreamToken, cached: _Cached) -> TokenSet:
        """The row's ``access_expires_at`` decides when to refresh (readable without decrypting; an operator can
        force a refresh by setting it to the past)."""
        if row.access_expires_at != cached.tokens.expires_at:
            cached.tokens = replace(cached.tokens, expires_at=row.access_expires_at)
        return cached.tokens

    # --- writing ----------------------------------------------------------------------------------------------

    def save(self, route_key: str, subject: str, tokens: TokenSet) -> None:
        """Store a freshly connected token set, replacing whatever was stored (a reconnect wins over a refresh
        in flight: the refresher's conditional write then fails and it re-reads)."""
        for _ in range(5):
            existing = self._store.get(route_key, subject)
            version = 1 if existing is None else existing.version + 1
            if self._write(route_key, subject, tokens, version, None if existing is None else existing.version):
                return
        raise RuntimeError(f"could not store the upstream credential for {route_key}: the row keeps changing")

    def delete(self, route_key: str, subject: str) -> None:
        self._store.delete(route_key, subject)
        self._cache.pop((route_key, subject), None)

    async def disconnect(self, route_key: str, subject: str) -> None:
        """Forget the credential, and revoke it at the upstream's authorization server where it has a revocation
        endpoint (RFC 7009), so the upstream grant ends too. Deleting comes first and always happens: a revocation
        the server refuses or cannot take is logged and audited, never an error for the user."""
        try:
            _, tokens = self._load(route_key, subject)
        except NotConnected:
            tokens = None
        self.delete(route_key, subject)
        if tokens is None or self._revoker is None:
            return
        try:
            await self._revoker(tokens)
        except TokenEndpointError as error:
            logger.warning("revoking the upstream credential of %s failed: %s", route_key, error.error or "unreachable")
            self._record("upstream.failed", route_key, subject, error=error.error or "unreachable", deleted=True)

    def _write(self, route_key: str, subject: str, tokens: TokenSet, version: int, expected: int | None) -> bool:
        now = int(self._clock())
        row = UpstreamToken(
            route_key=route_key,
            subject=subject,
            ciphertext=self._cipher.encrypt(tokens.to_bytes(), encryption_context(route_key, subject)),
            version=version,
            access_expires_at=tokens.expires_at,
            updated_at=now,
            metadata={"issuer": tokens.issuer},
        )
        if not self._store.put(row, expected):
            return False
        self._cache[(route_key, subject)] = _Cached(version, row.ciphertext, tokens, self._clock())
        return True

    # --- refresh ----------------------------------------------------------------------------------------------

    async def _refresh(self, row: UpstreamToken, tokens: TokenSet, *, rejected: TokenSet | None) -> TokenSet:
        route_key, subject = row.route_key, row.subject
        owner = random_token(12)
        deadline = self._clock() + self.wait_seconds
        while True:
            now = int(self._clock())
            if await asyncio.to_thread(
                self._store.acquire_lease, route_key, subject, owner, now, now + self.lease_seconds
            ):
                latest_row = await asyncio.to_thread(self._store.get, route_key, subject)
                if latest_row is not None and latest_row.version == row.version:
                    return await self._refresh_holding_lease(row, tokens)
                # Another container's refresh landed between our read and our lease: release the lease (a
                # rewrite of the row as it is clears it, no re-encryption) and use what it stored.
                if latest_row is not None:
                    released = dataclasses.replace(latest_row, version=latest_row.version + 1)
                    await asyncio.to_thread(self._store.put, released, latest_row.version)
                row, latest = await asyncio.to_thread(self._load, route_key, subject)
                if latest.access_token != tokens.access_token or not latest.refresh_due(
                    int(self._clock()), self.refresh_skew_seconds
                ):
                    return latest
                tokens = latest
                continue
            # Another container is refreshing: wait for its write (the version moves), then use its result.
            if self._clock() >= deadline:
                return self._give_up(tokens, "another container's refresh did not finish in time")
            await self._sleep(self.poll_seconds)
            row, latest = await asyncio.to_thread(self._load, route_key, subject)
            if latest.access_token != tokens.access_token and not latest.refresh_due(
                int(self._clock()), self.refresh_skew_seconds
            ):
                return latest
            tokens = latest

    async def _refresh_holding_lease(self, row: UpstreamToken, tokens: TokenSet) -> TokenSet:
        route_key, subject = row.route_key, row.subject
        try:
            newer = await self._refresher(tokens)
        except TokenEndpointError as error:
            if error.needs_reconnect:
                logger.info("upstream refused to refresh the credential of %s (%s): deleted", route_key, error.error)
                await asyncio.to_thread(self.delete, route_key, subject)
                self._record("upstream.failed", route_key, subject, error=error.error or "refused", deleted=True)
                raise CredentialRevoked(
                    f"the upstream authorization server refused the refresh: {error.error}"
                ) from None
            logger.warning("refreshing the upstream credential of %s failed: %s", route_key, error)
            self._record("upstream.failed", route_key, subject, error="unreachable", deleted=False)
            return self._give_up(tokens, str(error))
        if await asyncio.to_thread(self._write, route_key, subject, newer, row.version + 1, row.version):
            logger.info("upstream credential of %s refreshed", route_key)
            self._record("upstream.refreshed", route_key, subject)
            return newer
        # Someone else wrote meanwhile (a reconnect): theirs is newer than ours.
        _, latest = await asyncio.to_thread(self._load, route_key, subject)
        return latest

    def _record(
        self, kind: AuditKind, route_key: str, subject: str, *, error: str | None = None, deleted: bool | None = None
    ) -> None:
        if self._audit is not None:
            workspace = route_key.split("/", 1)[0]
            self._audit.record(
                kind, workspace=workspace, route_key=route_key, user_id=subject, error=error, deleted=deleted
            )

    def _give_up(self, tokens: TokenSet, reason: str) -> TokenSet:
        """Keep using a token that has not expired yet; an expired one is a transient failure."""
        if tokens.expires_at is not None and tokens.expires_at <= int(self._clock()):
            raise RefreshUnavailable(reason)
        return tokens

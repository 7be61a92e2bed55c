"""Is a presented API key good for this route, now? The proxy asks on every call.

The record is read by key id (one strongly consistent ``GetItem``) on every call unless
``GATEWAY_GRANT_STATUS_CACHE_SECONDS`` opts into trusting an active key that long, exactly like a grant's status:
a revocation or an expiry then bites on the next call (or within that bound). A revoked key is remembered by the
container for good. The secret is compared on every call, cached record or not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.api_keys.key_format import parse_key, secret_matches

if TYPE_CHECKING:
    from gateway.routes import Route
    from gateway.storage.ports import ApiKeyStore
    from gateway.storage.records import ApiKey

MAX_ENTRIES = 10_000


class InvalidApiKey(Exception):
    """The key is malformed, unknown, revoked, expired, or not valid at this route; the message says which (and
    never holds the key)."""


class ApiKeyVerifier:
    def __init__(
        self, store: ApiKeyStore, cache_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._active: dict[str, tuple[ApiKey, float]] = {}
        self._revoked: dict[str, ApiKey] = {}
        self._lock = threading.Lock()

    def verify(self, presented: str, route: Route, now: int) -> ApiKey:
        """The key's record if it may call ``route`` at ``now``. Raises :class:`InvalidApiKey`, or ``StorageError``
        when the store fails."""
        parsed = parse_key(presented)
        if parsed is None:
            raise InvalidApiKey("the gateway API key is malformed")
        key_id, secret = parsed
        key = self._lookup(key_id)
        if key is None or not secret_matches(secret, key.secret_hash):
            raise InvalidApiKey("the gateway API key is unknown")
        if key.status != "active":
            raise InvalidApiKey("the gateway API key was revoked")
        if not key.is_usable(now):
            raise InvalidApiKey("the gateway API key has expired")
        if key.workspace != route.workspace_name or route.server_name not in key.servers:
            raise InvalidApiKey("the gateway API key is not valid for this MCP server")
        if not route.server.access.allows(key.user_id, key.user_groups):
            raise InvalidApiKey("the key's owner may not use this MCP server")
        return key

    def _lookup(self, key_id: str) -> ApiKey | None:
        revoked = self._revoked.get(key_id)
        if revoked is not None:
            return revoked
        checked_at = self._clock()
        cached = self._active.get(key_id)
        if cached is not None and cached[1] > checked_at:
            return cached[0]
        key = self._store.get_key(key_id)
        with self._lock:
            if len(self._active) >= MAX_ENTRIES:
                self._active.clear()
            if len(self._revoked) >= MAX_ENTRIES:
                self._revoked.clear()
            if key is not None and key.status == "active" and self._cache_seconds > 0:
                self._active[key_id] = (key, checked_at + self._cache_seconds)
            elif key is not None and key.status == "revoked":
                self._revoked[key_id] = key
        return key

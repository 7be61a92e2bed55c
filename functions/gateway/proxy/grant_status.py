"""Is the grant behind an access token still active? Self-contained tokens cannot be recalled, so the proxy asks the
grants table, and remembers the answer in the warm container for ``GATEWAY_GRANT_STATUS_CACHE_SECONDS``.

That bound is how long a revocation may take to bite (0 means every request reads the table). A revoked or
missing grant is remembered as such for good: revocation is final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gateway.storage.ports import GrantStore

MAX_ENTRIES = 10_000


class GrantStatusCache:
    def __init__(self, grants: GrantStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._grants = grants
        self._ttl = ttl_seconds
        self._clock = clock
        self._active_until: dict[str, float] = {}
        self._inactive: set[str] = set()
        self._lock = threading.Lock()

    def is_active(self, grant_id: str, now: int) -> bool:
        """True if the grant exists, is active and within its lifetimes. Raises StorageError if the table fails."""
        if grant_id in self._inactive:
            return False
        checked_at = self._clock()
        if self._active_until.get(grant_id, 0.0) > checked_at:
            return True
        grant = self._grants.get_grant(grant_id)
        active = grant is not None and grant.status == "active" and now < grant.absolute_expires_at
        with self._lock:
            if len(self._active_until) >= MAX_ENTRIES:
                self._active_until.clear()
            if active:
                if self._ttl > 0:
                    self._active_until[grant_id] = checked_at + self._ttl
            elif grant is not None and grant.status == "revoked":
                self._inactive.add(grant_id)
        return active

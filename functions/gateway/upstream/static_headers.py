"""``auth: {type: headers}``: fixed headers (API keys, bearer tokens) sent to the upstream on every call.

Values are secret references (``secretsmanager:``, ``ssm:``, ``env:``, ``plain:``) resolved by
:class:`gateway.secrets.SecretResolver`. The resolved headers of a route are kept in the warm container for
``max_age_seconds`` (a rotated secret is picked up within that time, or at once after the upstream answers 401), so
the hot path makes no AWS call. Values are never logged; errors name the reference only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.secrets import DEFAULT_MAX_AGE_SECONDS, SecretResolver

if TYPE_CHECKING:
    from gateway.routes import Route


class StaticHeadersProvider:
    """An :class:`~gateway.upstream.credentials.UpstreamCredentialProvider` for static headers (same for every user).

    Resolution (Secrets Manager, SSM: synchronous) happens once per ``max_age_seconds`` per route, in a worker thread
    so that it never blocks the event loop (a virtual route calls its upstreams concurrently). Raises
    :class:`gateway.secrets.SecretUnavailableError` when a value cannot be read.
    """

    def __init__(
        self,
        make_resolver: Callable[[int], SecretResolver],
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_resolver = make_resolver
        self._resolver = make_resolver(max_age_seconds)
        self._max_age = max_age_seconds
        self._clock = clock
        self._cached: dict[str, tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        cached = self._cached.get(route.key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await asyncio.to_thread(self._resolve, route, force=False)

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        # The upstream refused the values we hold: read them again in case the secret was rotated.
        return await asyncio.to_thread(self._resolve, route, force=True)

    def _resolve(self, route: Route, *, force: bool) -> dict[str, str]:
        auth = route.server.auth
        refs: dict[str, str] = getattr(auth, "headers", {})
        # A forced read uses a resolver without a cache of its own, so the secret store is asked again.
        resolver = self._make_resolver(0) if force else self._resolver
        values = {name: resolver.resolve(ref) for name, ref in refs.items()}
        with self._lock:
            self._cached[route.key] = (self._clock() + self._max_age, values)
        return values

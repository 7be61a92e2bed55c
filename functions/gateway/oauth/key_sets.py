"""JSON Web Key Sets published at a URL: a client's ``jwks_uri`` (RFC 7591 §2, a metadata document's, a
pre-registered client's) and a trusted enterprise identity provider's (ID-JAG signatures).

Every fetch goes through the SSRF guard (:mod:`gateway.net.ssrf`: https only, no private addresses, no redirects,
size and time caps): a ``jwks_uri`` is chosen by whoever registered the client. Fetched sets are kept in the
container, honouring ``Cache-Control`` as client metadata documents are (:func:`gateway.oauth.cimd.cache_ttl`), at
most :data:`MAX_ENTRIES` URLs (least recently used first out). A JWT whose ``kid`` the cached set lacks makes one
fetch again (the signer rotated its keys), at most once per :data:`REFETCH_INTERVAL_SECONDS` per URL, so a stream of
made-up ``kid`` values cannot turn the gateway into a fetcher of someone's URL.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gateway import safe_json
from gateway.net.ssrf import FetchError, SafeFetcher
from gateway.oauth.cimd import cache_ttl
from gateway.tokens.foreign_jwts import InvalidKeySet, KeySet

DEFAULT_TTL_SECONDS = 300
MAX_TTL_SECONDS = 86400
MAX_ENTRIES = 256
REFETCH_INTERVAL_SECONDS = 60


class KeySetUnavailable(Exception):
    """The key set could not be fetched or holds no usable key; the message says why (no response data)."""


@dataclass(slots=True)
class _Entry:
    keys: KeySet
    expires_at: int
    fetched_at: int


class KeySetSource:
    """Fetches and caches key sets by URL. One per container."""

    def __init__(self, fetcher: SafeFetcher, *, max_entries: int = MAX_ENTRIES) -> None:
        self._fetcher = fetcher
        self.max_entries = max_entries
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    async def get(self, url: str, now: int, *, kid: object = None) -> KeySet:
        """The key set at ``url``; with ``kid``, fetched again when the cached set has no such key (at most once a
        minute). Raises :class:`KeySetUnavailable`."""
        entry = self._cache.get(url)
        if entry is not None and entry.expires_at > now:
            self._cache.move_to_end(url)
            known = not isinstance(kid, str) or any(key.kid == kid for key in entry.keys.keys)
            if known or now - entry.fetched_at < REFETCH_INTERVAL_SECONDS:
                return entry.keys
        return await self._fetch(url, now)

    async def _fetch(self, url: str, now: int) -> KeySet:
        try:
            result = await self._fetcher.get(url, headers={"Accept": "application/jwk-set+json, application/json"})
        except FetchError as problem:
            raise KeySetUnavailable(f"the key set at {url} could not be fetched: {problem}") from None
        if result.status != 200:
            raise KeySetUnavailable(f"the key set at {url} answered HTTP {result.status}")
        try:
            keys = KeySet.from_json(safe_json.loads(result.body))
        except ValueError as problem:  # InvalidKeySet, or not JSON
            reason = str(problem) if isinstance(problem, InvalidKeySet) else "it is not valid JSON"
            raise KeySetUnavailable(f"the key set at {url} is unusable: {reason}") from None
        ttl = cache_ttl(result.headers.get("cache-control"), DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS)
        # Even a no-store set is kept for the refetch interval: one JWT must not fetch it once per key tried.
        self._cache[url] = _Entry(keys, now + max(ttl, REFETCH_INTERVAL_SECONDS), now)
        self._cache.move_to_end(url)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return keys

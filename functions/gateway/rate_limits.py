"""Rate limits on the public endpoints, shared by every container through fixed-window counters in DynamoDB
(:class:`gateway.storage.ports.RateLimiter`; docs/non-interactive.md, "Rate limits").

A limit is a number of requests per window (60 s) per subject (a client address, a client id, an API key, a
user). When the counter store fails, the request is let through and a warning is logged (fail open): the limits
protect the gateway's tables and upstreams from floods, and a throttled or unreachable limits table must not take
every sign-in and tool call down with it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.storage.ports import RateLimiter, StorageError

logger = logging.getLogger("gateway.rate_limits")

WINDOW_SECONDS = 60
MAX_SUBJECT_LENGTH = 128  # longer subjects (a CIMD client id is a URL) are hashed into the counter's key


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per ``window_seconds`` and subject; 0 turns the limit off."""

    name: str
    limit: int
    window_seconds: int = WINDOW_SECONDS


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    """Seconds until the window ends (for ``Retry-After``), when refused."""


ALLOWED = Verdict(True)


def client_subject(client_id: str, *, authenticated: bool, address: str) -> str:
    """The subject of a per-client limit (issue "Fail closed", targeted lockout).

    Only a client that proved who it is (a confidential client whose secret verified) is counted by its id alone:
    anyone can *name* a public, metadata-document or leaked client id, and counting those requests by id would let
    a stranger spend the limit of every user of that client. A public client is therefore counted per (client,
    address), which bounds one address's use of one client without touching anyone else's.
    """
    return client_id if authenticated else f"{client_id}@{address}"


class RateLimits:
    def __init__(self, limiter: RateLimiter, clock: Callable[[], float]) -> None:
        self._limiter = limiter
        self._clock = clock

    def check(self, limit: RateLimit, subject: str) -> Verdict:
        """Count one request of ``subject`` against ``limit``."""
        if limit.limit <= 0:
            return ALLOWED
        now = int(self._clock())
        window_start = now - now % limit.window_seconds
        window_ends = window_start + limit.window_seconds
        if len(subject) > MAX_SUBJECT_LENGTH:
            subject = "sha256:" + hashlib.sha256(subject.encode()).hexdigest()
        bucket = f"{limit.name}#{subject}#{window_start}"
        try:
            allowed = self._limiter.take(bucket, limit.limit, window_ends)
        except StorageError:
            logger.warning("rate limit %s not checked: the limits table is unavailable (let through)", limit.name)
            return ALLOWED
        if allowed:
            return ALLOWED
        logger.info("rate limit %s reached (%d per %d s)", limit.name, limit.limit, limit.window_seconds)
        return Verdict(False, max(1, window_ends - now))

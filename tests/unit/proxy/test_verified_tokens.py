"""Remembered token verifications: skipped signature checks for a token seen before, never past its expiry."""

from __future__ import annotations

import pytest

from gateway.proxy.verified_tokens import VerifiedTokens
from gateway.tokens.access_token import InvalidAccessToken
from tests.support.runtime import memory_runtime


class CountingVerifier:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.calls = 0

    def verify(self, token: str, *, route: object, now: float | None = None) -> object:
        self.calls += 1
        return self.inner.verify(token, route=route, now=now)  # type: ignore[attr-defined]


def test_a_token_is_verified_once_until_it_expires() -> None:
    runtime = memory_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    token = runtime.access_tokens.issue(
        route=route, subject="alice", client_id="c", scopes=["mcp"], grant_id="g", now=1_800_000_000
    )
    counting = CountingVerifier(runtime.access_tokens)
    now = [0.0]
    cache = VerifiedTokens(counting, clock=lambda: now[0])  # type: ignore[arg-type]

    now[0] = 1_800_000_001.0
    first = cache.verify(token, route)
    again = cache.verify(token, route)
    assert first == again and counting.calls == 1

    # Past exp + leeway the cached result is not used: the token is verified again (which refuses an expired one)
    now[0] = first.expires_at + 31
    with pytest.raises(InvalidAccessToken, match="expired"):
        cache.verify(token, route)
    assert counting.calls == 2


def test_garbage_is_never_remembered() -> None:
    runtime = memory_runtime()
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    cache = VerifiedTokens(runtime.access_tokens, max_entries=2)
    for _ in range(2):
        with pytest.raises(InvalidAccessToken):
            cache.verify("a.b.c", route)

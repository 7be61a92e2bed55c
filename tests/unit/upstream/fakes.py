"""Test doubles for the upstream-OAuth modules: a scripted fetcher and token-set factories."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from gateway.net.ssrf import FetchError, FetchResult, SafeFetcher
from gateway.upstream.token_set import TokenSet, UpstreamClient

Handler = Callable[[str, str, Mapping[str, str], bytes | None], tuple[int, Any, dict[str, str]]]


@dataclass
class FakeFetcher:
    """Answers by (method, url); records every request. A missing entry is a fetch error."""

    routes: dict[tuple[str, str], Handler | tuple[int, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, str], bytes | None]] = field(default_factory=list)

    def on(self, method: str, url: str, reply: Handler | tuple[int, Any]) -> None:
        self.routes[(method, url)] = reply

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> FetchResult:
        return await self.request("GET", url, headers=headers)

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, content: bytes | None = None
    ) -> FetchResult:
        self.calls.append((method, url, dict(headers or {}), content))
        reply = self.routes.get((method, url))
        if reply is None:
            raise FetchError(f"no route for {method} {url}")
        if callable(reply):
            status, body, response_headers = reply(method, url, headers or {}, content)
        else:
            (status, body), response_headers = reply, {}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return FetchResult(url=url, status=status, headers=httpx.Headers(response_headers), body=raw)

    def as_fetcher(self) -> SafeFetcher:
        return cast(SafeFetcher, self)


CLIENT = UpstreamClient("gw-client", "gw-secret", "client_secret_basic", "dcr")


def token_set(
    access: str = "access-1",
    *,
    refresh: str | None = "refresh-1",
    obtained_at: int = 1000,
    expires_in: int | None = 3600,
) -> TokenSet:
    return TokenSet(
        access_token=access,
        token_type="Bearer",
        expires_at=None if expires_in is None else obtained_at + expires_in,
        refresh_token=refresh,
        scope="mcp",
        obtained_at=obtained_at,
        issuer="https://as.example.com",
        token_endpoint="https://as.example.com/token",
        resource="https://upstream.example.com/mcp",
        client=CLIENT,
    )

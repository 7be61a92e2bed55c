"""The upstream token set the vault keeps encrypted: what the proxy attaches and what a refresh needs.

Besides the tokens (RFC 6749 §5.1) the set carries how to refresh them — the token endpoint, the client credentials
the gateway used at that authorization server and the ``resource`` (RFC 8707) — so that a refresh on the proxy's
path needs no discovery and no second read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Literal

ClientAuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]


@dataclass(frozen=True, slots=True)
class UpstreamClient:
    """The gateway's identity at one upstream authorization server."""

    client_id: str
    client_secret: str | None
    auth_method: ClientAuthMethod
    source: Literal["dcr", "cimd", "preregistered"]

    def __repr__(self) -> str:  # never print the secret
        return f"UpstreamClient(client_id={self.client_id!r}, auth_method={self.auth_method!r}, source={self.source!r})"


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    token_type: str
    expires_at: int | None  # Unix seconds; None when the server did not say (RFC 6749 §5.1 expires_in is optional)
    refresh_token: str | None
    scope: str | None
    obtained_at: int
    issuer: str
    token_endpoint: str
    resource: str
    client: UpstreamClient
    revocation_endpoint: str | None = None  # RFC 7009, where the server advertises one (sets stored before: None)

    def __repr__(self) -> str:  # tokens never reach logs or tracebacks
        refreshable = self.refresh_token is not None
        return f"TokenSet(issuer={self.issuer!r}, expires_at={self.expires_at!r}, refreshable={refreshable})"

    def authorization_header(self) -> str:
        # RFC 6750 §2.1; a server answering token_type "bearer" in any case still means Bearer.
        return f"Bearer {self.access_token}"

    def refresh_due(self, now: int, skew_seconds: int) -> bool:
        """Whether to refresh before use: within ``skew`` of expiry (at most a quarter of the lifetime, so short
        lifetimes are not refreshed on every use)."""
        if self.expires_at is None:
            return False
        lifetime = max(self.expires_at - self.obtained_at, 0)
        return now >= self.expires_at - min(skew_seconds, lifetime // 4)

    def with_refreshed(self, newer: TokenSet) -> TokenSet:
        """RFC 6749 §6: a refresh response may omit the refresh token, in which case the old one stays valid."""
        return newer if newer.refresh_token else replace(newer, refresh_token=self.refresh_token)

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> TokenSet:
        raw = json.loads(data)
        client = UpstreamClient(**raw.pop("client"))
        return cls(client=client, **raw)

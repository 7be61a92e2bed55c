"""Upstream credentials for routes with ``auth: {type: oauth}``: the user's (or the shared) OAuth token from the
vault, as ``Authorization: Bearer`` (RFC 6750 §2.1). The client's own gateway token is never forwarded.

When no usable credential exists — never connected, deleted after a refused refresh, unreadable — the provider
raises :class:`~gateway.upstream.credentials.ReconnectRequired` with a connect link bound to the subject
(:mod:`gateway.upstream.connect_links`), which the proxy turns into ``-32042`` (MCP 2025-11-25, URL elicitation).
A refresh that fails for a transient reason with an already expired token raises :class:`UpstreamAuthUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.routes import Route
from gateway.upstream.connect_links import connect_url
from gateway.upstream.credentials import ReconnectRequired, UpstreamAuthUnavailable
from gateway.upstream.subjects import UnusableUserId, is_shared, subject_for
from gateway.upstream.token_set import TokenSet
from gateway.upstream.vault import CredentialRevoked, NotConnected, RefreshUnavailable, UpstreamVault


class OAuthCredentialProvider:
    def __init__(self, vault: UpstreamVault, secret: Callable[[], bytes], *, clock: Callable[[], float] = time.time):
        self._vault = vault
        self._secret = secret
        self._clock = clock
        self._last: dict[tuple[str, str], TokenSet] = {}  # what was handed out, to recognise a rejected token

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        subject = self._subject(route, user_id)
        try:
            tokens = await self._vault.current(route.key, subject)
        except NotConnected as problem:
            raise self._reconnect(route, subject, problem) from None
        except RefreshUnavailable as problem:
            raise UpstreamAuthUnavailable(upstream=route.key, reason=str(problem)) from None
        self._last[(route.key, subject)] = tokens
        return {"Authorization": tokens.authorization_header()}

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        subject = self._subject(route, user_id)
        try:
            tokens = await self._vault.after_unauthorized(route.key, subject, self._last.get((route.key, subject)))
        except NotConnected as problem:
            raise self._reconnect(route, subject, problem) from None
        except RefreshUnavailable as problem:
            raise UpstreamAuthUnavailable(upstream=route.key, reason=str(problem)) from None
        self._last[(route.key, subject)] = tokens
        return {"Authorization": tokens.authorization_header()}

    def _subject(self, route: Route, user_id: str) -> str:
        try:
            return subject_for(route, user_id)
        except UnusableUserId as problem:
            raise ReconnectRequired(upstream=route.key, connect_url="", reason=str(problem)) from None

    def _reconnect(self, route: Route, subject: str, problem: NotConnected) -> ReconnectRequired:
        if isinstance(problem, CredentialRevoked):
            reason = "the upstream account's authorization was revoked or has expired; connect it again"
        else:
            reason = "connect your upstream account to use this server"
        if is_shared(route):
            reason = f"{reason} (a workspace admin connects the shared account)"
        url = connect_url(route, subject, self._secret(), int(self._clock()))
        return ReconnectRequired(upstream=route.key, connect_url=url, reason=reason)

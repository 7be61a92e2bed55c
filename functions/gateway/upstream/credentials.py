"""Where the proxy gets the headers that authenticate it to a route's upstream, per the route's ``auth`` setting.

The client's gateway token never reaches the upstream (MCP 2025-11-25 §Authorization, "Token Passthrough" is
forbidden): the upstream sees only what a provider returns here.

- ``none``: no headers;
- ``headers``: static headers whose values come from Secrets Manager, SSM or the environment
  (:mod:`gateway.upstream.static_headers`);
- ``oauth``: the user's (or the workspace's shared) upstream OAuth token (``gateway.upstream.oauth_provider``,
  imported only by routes that use it).

The composition root (``runtime.py``) picks the provider for a route's kind and hands it to the proxy.

A provider that cannot produce a usable credential for the user raises :class:`ReconnectRequired`; the proxy turns
it into the URL-elicitation error of MCP 2025-11-25 (``-32042``) carrying ``connect_url``. One whose credential is
expired and cannot be refreshed right now raises :class:`UpstreamAuthUnavailable` (transient).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway.routes import Route


class ReconnectRequired(Exception):
    """The user must (re)connect their upstream account before the call can succeed.

    ``upstream`` is the route key (``workspace/server``); ``connect_url`` is bound to the user but not
    pre-authenticated (whoever opens it still signs in); ``reason`` says why, for logs and the error message.
    """

    def __init__(self, *, upstream: str, connect_url: str, reason: str) -> None:
        super().__init__(f"reconnect required for upstream {upstream!r}: {reason}")
        self.upstream = upstream
        self.connect_url = connect_url
        self.reason = reason


class UpstreamAuthUnavailable(Exception):
    """The upstream's authorization server could not refresh an expired credential right now (transient: the
    proxy answers 502 naming the upstream)."""

    def __init__(self, *, upstream: str, reason: str) -> None:
        super().__init__(f"upstream {upstream!r} credential cannot be refreshed now: {reason}")
        self.upstream = upstream
        self.reason = reason


class UpstreamCredentialProvider(Protocol):
    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        """The headers that authenticate a call to ``route``'s upstream on behalf of ``user_id``.

        May raise :class:`ReconnectRequired` or :class:`UpstreamAuthUnavailable`; raises ``StorageError`` when its
        store fails (the proxy answers 503).
        """
        ...

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        """Called once after the upstream answered 401: refresh or re-read the credential and return new headers,
        or raise :class:`ReconnectRequired`. Headers equal to the rejected ones mean nothing better is available."""
        ...


class NoCredentials:
    """``auth: {type: none}``: the upstream is called without credentials."""

    async def headers(self, route: Route, user_id: str) -> dict[str, str]:
        return {}

    async def after_unauthorized(self, route: Route, user_id: str) -> dict[str, str]:
        return {}


NO_CREDENTIALS = NoCredentials()

"""One view of every kind of client, for /authorize, /token and /revoke.

A ``client_id`` is looked up in this order (MCP 2025-11-25 "Client Registration Approaches"):

1. a **pre-registered** client of the route's workspace (``workspaces.<ws>.clients`` in the configuration), if its
   ``servers`` list allows this route;
2. an **https URL**: a Client ID Metadata Document, fetched and validated (:mod:`gateway.oauth.cimd`);
3. a **dynamically registered** client (RFC 7591) of *this* route: a registration belongs to one issuer.

Anything else is ``invalid_client``. Dynamic registrations expire when unused; :meth:`ClientResolver.note_use` slides
the expiry, writing at most once per ``touch_interval_seconds`` per client.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gateway.crypto.hashing import matches_hash
from gateway.oauth.cimd import CimdResolver, is_url_client_id
from gateway.oauth.errors import OAuthError
from gateway.secrets import SecretResolver, SecretUnavailableError
from gateway.storage.ports import ClientStore, StorageError
from gateway.storage.records import AuthMethod, ClientSource

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.routes import Route

logger = logging.getLogger("gateway.clients")

TOUCH_INTERVAL_SECONDS = 3600
_MAX_TRACKED = 10_000


@dataclass(frozen=True)
class ClientInfo:
    client_id: str
    client_name: str
    source: Literal["dcr", "cimd", "preregistered"]
    redirect_uris: tuple[str, ...]
    token_endpoint_auth_method: AuthMethod
    client_uri: str | None
    logo_uri: str | None
    secret_hash: str | None  # dcr: SHA-256 of the issued secret
    secret_ref: str | None  # preregistered: where the secret is read
    service_identity: str | None = None  # preregistered: may use client_credentials, acting as this identity
    jwks_uri: str | None = None  # private_key_jwt: where the client's public keys are
    jwks: dict[str, Any] | None = None  # ... or the keys themselves
    also_public: bool = False  # a metadata document that offers private_key_jwt and none (ChatGPT's)
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: token requests without a DPoP proof are refused
    authenticated_by: AuthMethod | None = None
    """How the client proved who it is in *this* request (set by client authentication; None: not at all, a public
    client)."""

    @property
    def has_secret(self) -> bool:
        return self.secret_hash is not None or self.secret_ref is not None

    @property
    def has_keys(self) -> bool:
        return self.jwks_uri is not None or self.jwks is not None

    @property
    def is_public(self) -> bool:
        """May it come with its ``client_id`` alone (token_endpoint_auth_method ``none``)?"""
        return (not self.has_secret and not self.has_keys) or self.also_public


class ClientResolver:
    def __init__(
        self,
        store: ClientStore,
        config: GatewayConfig,
        cimd: CimdResolver,
        secrets: SecretResolver,
        *,
        touch_interval_seconds: int = TOUCH_INTERVAL_SECONDS,
    ) -> None:
        self._store = store
        self._config = config
        self._cimd = cimd
        self._secrets = secrets
        self.touch_interval_seconds = touch_interval_seconds
        self._last_used: dict[str, int] = {}
        self._lock = threading.Lock()

    async def resolve(self, route: Route, client_id: str, now: int) -> ClientInfo:
        """The client named ``client_id`` at ``route``.

        Raises :class:`OAuthError`: ``invalid_client`` for an unknown, expired or wrong-route client (or an
        invalid metadata document), ``temporarily_unavailable`` when the client store fails.
        """
        if not client_id:
            raise OAuthError("invalid_client", "client_id is missing")
        preregistered = self._preregistered(route, client_id)
        if preregistered is not None:
            return preregistered
        if is_url_client_id(client_id):
            document = await self._cimd.resolve(client_id, now)
            return ClientInfo(
                client_id=document.client_id,
                client_name=document.client_name,
                source="cimd",
                redirect_uris=document.redirect_uris,
                token_endpoint_auth_method=document.auth_method,
                client_uri=document.client_uri,
                logo_uri=document.logo_uri,
                secret_hash=None,
                secret_ref=None,
                jwks_uri=document.jwks_uri,
                jwks=document.jwks,
                also_public=document.also_public,
                dpop_bound_access_tokens=document.dpop_bound_access_tokens,
            )
        return self._registered(route, client_id, now)

    def _preregistered(self, route: Route, client_id: str) -> ClientInfo | None:
        for client in route.workspace.clients:
            if client.client_id != client_id:
                continue
            if client.servers and route.server_name not in client.servers:
                raise OAuthError("invalid_client", f"client {client_id!r} is not allowed to use {route.key}")
            method: AuthMethod = "client_secret_basic" if client.client_secret else "none"
            if client.jwks_uri is not None or client.jwks is not None:
                method = "private_key_jwt"
            return ClientInfo(
                client_id=client.client_id,
                client_name=client.client_name,
                source="preregistered",
                redirect_uris=tuple(client.redirect_uris),
                token_endpoint_auth_method=method,
                client_uri=None,
                logo_uri=None,
                secret_hash=None,
                secret_ref=client.client_secret,
                service_identity=client.service_identity,
                jwks_uri=client.jwks_uri,
                jwks=client.jwks,
                dpop_bound_access_tokens=client.dpop_bound_access_tokens,
            )
        return None

    def _registered(self, route: Route, client_id: str, now: int) -> ClientInfo:
        try:
            registered = self._store.get(client_id, now)
        except StorageError:
            raise OAuthError(
                "temporarily_unavailable", "client registrations cannot be read right now; try again shortly"
            ) from None
        if registered is None:
            raise OAuthError(
                "invalid_client",
                f"unknown client_id {client_id[:100]!r}: it was never registered here or its registration expired "
                "after going unused; register again",
            )
        if registered.route_key != route.key:
            # One issuer per route: a registration at another route's /register is not valid here.
            raise OAuthError(
                "invalid_client", f"client {client_id[:100]!r} is registered for another server; register at this one"
            )
        self._remember_use(client_id, registered.last_used_at)
        source: ClientSource = "dcr"
        return ClientInfo(
            client_id=registered.client_id,
            client_name=registered.client_name,
            source=source,
            redirect_uris=registered.redirect_uris,
            token_endpoint_auth_method=registered.token_endpoint_auth_method,
            client_uri=registered.client_uri,
            logo_uri=registered.logo_uri,
            secret_hash=registered.client_secret_hash,
            secret_ref=None,
            jwks_uri=registered.jwks_uri,
            jwks=registered.jwks,
            dpop_bound_access_tokens=registered.dpop_bound_access_tokens,
        )

    def _remember_use(self, client_id: str, last_used_at: int) -> None:
        with self._lock:
            if len(self._last_used) >= _MAX_TRACKED:
                self._last_used.clear()
            self._last_used[client_id] = max(last_used_at, self._last_used.get(client_id, 0))

    def note_use(self, client: ClientInfo, now: int) -> None:
        """Slide the unused-registration expiry of a DCR client. Best effort: a store failure is logged only."""
        if client.source != "dcr":
            return
        last = self._last_used.get(client.client_id)
        if last is not None and now - last < self.touch_interval_seconds:
            return
        expires_at = now + self._config.oauth.unused_client_ttl_seconds
        try:
            self._store.touch(client.client_id, now, expires_at)
        except StorageError:
            logger.warning("could not record the use of a registered client; its expiry was not extended")
            return
        self._remember_use(client.client_id, now)

    def secret_matches(self, client: ClientInfo, presented: str) -> bool:
        """Constant-time check of a presented client secret (hash for DCR, the resolved secret for pre-registered).

        Raises ``temporarily_unavailable`` :class:`OAuthError` when a pre-registered secret cannot be read.
        """
        if client.secret_hash is not None:
            return matches_hash(presented, client.secret_hash)
        if client.secret_ref is not None:
            try:
                expected = self._secrets.resolve(client.secret_ref)
            except SecretUnavailableError as problem:
                logger.error("secret of pre-registered client %s unavailable: %s", client.client_id, problem)
                raise OAuthError(
                    "temporarily_unavailable", "the client's secret cannot be checked right now; try again later"
                ) from None
            # Compare digests so the comparison takes the same time whatever the lengths.
            return hmac.compare_digest(
                hashlib.sha256(presented.encode()).digest(), hashlib.sha256(expected.encode()).digest()
            )
        return False

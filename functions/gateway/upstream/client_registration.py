"""How the gateway identifies itself, as a client, to an upstream's authorization server (the client side; the
gateway's own ``/register`` is :mod:`gateway.oauth.registration_endpoint`) (MCP 2025-11-25 §Authorization,
"Client Registration"), in the spec's order of preference:

1. **pre-registered** credentials from the route's config (``registration: preregistered``);
2. a **Client ID Metadata Document** the gateway publishes at ``{base}/{ws}/{server}/oauth-client.json`` (served by
   the metadata function), used as ``client_id`` when the authorization server advertises
   ``client_id_metadata_document_supported`` — chosen by ``registration: cimd``, and also by ``dcr`` when the
   server has no registration endpoint;
3. **Dynamic Client Registration** (RFC 7591) at the server's ``registration_endpoint`` — ``registration: dcr``,
   and ``cimd`` when the server does not support metadata documents.

A DCR result is kept per route in the ``upstream_tokens`` table under the subject :data:`REGISTRATION_SUBJECT`,
encrypted like a token set (its client secret is a secret), and reused until the authorization server or the
gateway's redirect URI changes, or the server rejects the client (:meth:`ClientRegistrar.forget`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from gateway import safe_json
from gateway.config import OAuthUpstreamAuth
from gateway.net.ssrf import FetchError, SafeFetcher
from gateway.routes import Route
from gateway.storage.ports import UpstreamTokenStore
from gateway.storage.records import UpstreamToken
from gateway.upstream.cipher import TokenCipher, encryption_context
from gateway.upstream.client_metadata import CLIENT_NAME, client_metadata_url, connect_callback_url
from gateway.upstream.metadata_discovery import AuthorizationServer
from gateway.upstream.token_set import ClientAuthMethod, UpstreamClient

# Not a possible user id of a per-user credential: connect refuses user ids starting with "#".
REGISTRATION_SUBJECT = "#oauth-client"

SecretLookup = Callable[[str], str]


class RegistrationError(Exception):
    """The gateway cannot identify itself to the upstream's authorization server; says why."""


@dataclass(frozen=True, slots=True)
class _StoredRegistration:
    issuer: str
    redirect_uri: str
    client_id: str
    client_secret: str | None
    auth_method: ClientAuthMethod


def _oauth_auth(route: Route) -> OAuthUpstreamAuth:
    auth = route.server.auth
    if not isinstance(auth, OAuthUpstreamAuth):
        raise RegistrationError(f"route {route.key} does not use upstream OAuth")
    return auth


class ClientRegistrar:
    """Produces the gateway's client credentials at a route's upstream authorization server."""

    def __init__(
        self,
        fetcher: SafeFetcher,
        store: UpstreamTokenStore,
        cipher: TokenCipher,
        secrets: SecretLookup,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetcher = fetcher
        self._store = store
        self._cipher = cipher
        self._secrets = secrets
        self._clock = clock

    async def client_for(self, route: Route, server: AuthorizationServer) -> UpstreamClient:
        auth = _oauth_auth(route)
        if auth.registration == "preregistered":
            return self._preregistered(auth, server)
        cimd = server.client_id_metadata_document_supported and route.base_url.startswith("https://")
        if (auth.registration == "cimd" and cimd) or (server.registration_endpoint is None and cimd):
            return UpstreamClient(client_metadata_url(route), None, "none", "cimd")
        if server.registration_endpoint is None:
            raise RegistrationError(
                f"the authorization server {server.issuer} supports neither dynamic client registration nor client "
                "metadata documents (over https); configure registration: preregistered with a client_id"
            )
        return await self._dynamic(route, server)

    def forget(self, route: Route) -> None:
        """Drop a stored dynamic registration (e.g. the server answered ``invalid_client``)."""
        self._store.delete(route.key, REGISTRATION_SUBJECT)

    # --- pre-registered ---------------------------------------------------------------------------------------

    def _preregistered(self, auth: OAuthUpstreamAuth, server: AuthorizationServer) -> UpstreamClient:
        assert auth.client_id is not None  # the config requires it
        if auth.client_secret is None:
            return UpstreamClient(auth.client_id, None, "none", "preregistered")
        secret = self._secrets(auth.client_secret)
        return UpstreamClient(auth.client_id, secret, server.secret_auth_method(), "preregistered")

    # --- dynamic (RFC 7591) -------------------------------------------------------------------------------------

    async def _dynamic(self, route: Route, server: AuthorizationServer) -> UpstreamClient:
        redirect_uri = connect_callback_url(route)
        row, kept = self._kept(route, server, redirect_uri)
        if kept is not None:
            return kept
        registered = await self._register(route, server, redirect_uri)
        record = UpstreamToken(
            route_key=route.key,
            subject=REGISTRATION_SUBJECT,
            ciphertext=self._cipher.encrypt(
                json.dumps(asdict(registered)).encode(), encryption_context(route.key, REGISTRATION_SUBJECT)
            ),
            version=1 if row is None else row.version + 1,
            access_expires_at=None,
            updated_at=int(self._clock()),
            metadata={"issuer": server.issuer},
        )
        # Conditional: when another container registered at the same moment, its registration is the one kept, and
        # this one uses it too (one registration per upstream: a flow started with ours would fail at the callback,
        # which compares the client with the one kept).
        if not self._store.put(record, None if row is None else row.version):
            _, kept = self._kept(route, server, redirect_uri)
            if kept is not None:
                return kept
        return UpstreamClient(registered.client_id, registered.client_secret, registered.auth_method, "dcr")

    def _kept(
        self, route: Route, server: AuthorizationServer, redirect_uri: str
    ) -> tuple[UpstreamToken | None, UpstreamClient | None]:
        """The stored row, and its registration when it is still usable (same server, same redirect URI)."""
        from gateway.upstream.cipher import DecryptionFailed

        row = self._store.get(route.key, REGISTRATION_SUBJECT)
        if row is None:
            return None, None
        try:
            stored = _StoredRegistration(
                **json.loads(self._cipher.decrypt(row.ciphertext, encryption_context(route.key, REGISTRATION_SUBJECT)))
            )
        except (DecryptionFailed, ValueError, TypeError):
            return row, None
        if stored.issuer != server.issuer or stored.redirect_uri != redirect_uri:
            return row, None
        return row, UpstreamClient(stored.client_id, stored.client_secret, stored.auth_method, "dcr")

    async def _register(self, route: Route, server: AuthorizationServer, redirect_uri: str) -> _StoredRegistration:
        assert server.registration_endpoint is not None
        # A confidential client where the server allows it (the gateway keeps secrets safely), else public + PKCE.
        secret_methods = ("client_secret_basic", "client_secret_post")
        confidential = any(method in server.token_endpoint_auth_methods for method in secret_methods)
        method: ClientAuthMethod = server.secret_auth_method() if confidential else "none"
        metadata: dict[str, Any] = {
            "client_name": f"{CLIENT_NAME} ({route.workspace.title or route.workspace_name})",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "application_type": "web",
            "client_uri": route.base_url,
        }
        try:
            result = await self._fetcher.request(
                "POST",
                server.registration_endpoint,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                content=json.dumps(metadata).encode(),
            )
        except FetchError as error:
            raise RegistrationError(f"dynamic client registration at {server.issuer} failed: {error}") from None
        try:
            data = safe_json.loads(result.body)
        except ValueError:
            data = None
        if result.status not in (200, 201) or not isinstance(data, dict) or not isinstance(data.get("client_id"), str):
            detail = ""
            if isinstance(data, dict) and isinstance(data.get("error"), str):
                detail = f": {data['error']} {str(data.get('error_description') or '')[:200]}".rstrip()
            raise RegistrationError(
                f"dynamic client registration at {server.issuer} was refused (HTTP {result.status}){detail}"
            )
        secret = data.get("client_secret") if isinstance(data.get("client_secret"), str) else None
        granted = data.get("token_endpoint_auth_method", method)
        if granted not in ("none", "client_secret_basic", "client_secret_post") or (granted != "none" and not secret):
            granted = "none" if not secret else "client_secret_basic"
        return _StoredRegistration(server.issuer, redirect_uri, data["client_id"], secret, granted)

"""One token request after its client is authenticated: the DPoP binding (RFC 9449 §5), then the grant type.

The token function's HTTP layer parses and authenticates; this decides, so that every grant type gets the same
DPoP treatment: ``authorization_code``, ``refresh_token`` (:class:`TokenService`), ``client_credentials`` (RFC 6749
§4.4: a confidential client bound to a service identity), and ``jwt-bearer`` with an ID-JAG (RFC 7523 §2.1,
:class:`gateway.oauth.id_jag.IdJagVerifier`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.oauth.errors import OAuthError
from gateway.oauth.token_requests import (
    AnyTokenRequest,
    AuthorizationCodeRequest,
    ClientCredentialsRequest,
    JwtBearerRequest,
)

if TYPE_CHECKING:
    from gateway.oauth.clients import ClientInfo
    from gateway.oauth.id_jag import IdJagVerifier
    from gateway.oauth.token_dpop import TokenEndpointDpop
    from gateway.oauth.token_parts import TokenResponse
    from gateway.oauth.token_service import TokenService
    from gateway.routes import Route


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    response: TokenResponse
    refreshed: bool
    headers: dict[str, str] = field(default_factory=dict)
    """Headers of the answer (a fresh ``DPoP-Nonce`` where the workspace uses nonces)."""


class TokenGrants:
    def __init__(
        self, service: Callable[[], TokenService], dpop: TokenEndpointDpop, id_jags: Callable[[], IdJagVerifier]
    ) -> None:
        """``service`` and ``id_jags`` are looked up per request: built on first use (a request that is refused
        before needs neither), and a container's may be replaced (a test swaps the signer)."""
        self._service = service
        self._dpop = dpop
        self._id_jags = id_jags

    async def issue(
        self,
        route: Route,
        request: AnyTokenRequest,
        client: ClientInfo,
        dpop_proofs: list[str],
        token_urls: Collection[str],
        now: int,
    ) -> IssuedTokens:
        """Raises :class:`OAuthError`; ``StorageError`` / ``KeyServiceUnavailable`` for the caller's 503."""
        jkt = self._dpop.binding(dpop_proofs, route, client, token_urls, now)
        nonce = self._dpop.nonce_for(route, now) if jkt is not None else None
        headers = {"DPoP-Nonce": nonce} if nonce is not None else {}
        service = self._service()
        if isinstance(request, AuthorizationCodeRequest):
            response = service.exchange_code(
                route, client.client_id, request, now, dpop_jkt=jkt, public_client=client.authenticated_by is None
            )
        elif isinstance(request, ClientCredentialsRequest):
            # RFC 6749 §4.4: confidential clients only; here, those an administrator bound to a service identity.
            if client.service_identity is None or client.authenticated_by is None:
                raise OAuthError("unauthorized_client", "this client may not use the client_credentials grant")
            response = service.client_credentials(
                route, client.client_id, client.service_identity, request, now, dpop_jkt=jkt
            )
        elif isinstance(request, JwtBearerRequest):
            id_jag = await self._id_jags().verify(request.assertion, route, client.client_id, now)
            response = service.redeem_id_jag(route, client.client_id, request, id_jag, now, dpop_jkt=jkt)
        else:
            return IssuedTokens(service.refresh(route, client.client_id, request, now, dpop_jkt=jkt), True, headers)
        return IssuedTokens(response, False, headers)

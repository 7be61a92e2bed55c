"""Token revocation (RFC 7009) at ``/revoke``: either kind of token revokes its grant.

Pure domain code, like :mod:`gateway.oauth.token_service`, which answers ``/revoke`` through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.config import OAuthPolicy
from gateway.oauth import refresh_tokens
from gateway.routes import Route
from gateway.storage.ports import GrantStore
from gateway.tokens.access_token import AccessTokens, InvalidAccessToken

if TYPE_CHECKING:
    from gateway.audit import AuditTrail

REASON_CLIENT_REVOKED = "revoked by the client"


class Revocation:
    def __init__(
        self,
        *,
        grants: GrantStore,
        access_tokens: AccessTokens,
        shared_secret: bytes,
        policy: OAuthPolicy,
        audit: AuditTrail | None = None,
    ) -> None:
        self._grants = grants
        self._access_tokens = access_tokens
        self._secret = shared_secret
        self._policy = policy
        self._audit = audit

    def revoke(self, route: Route, client_id: str, token: str, token_type_hint: str | None, now: int) -> None:
        """Revoke the grant behind ``token`` if it is ours and belongs to ``client_id``; otherwise do nothing.

        RFC 7009 §2.2: invalid or unknown tokens get the same 200 as revoked ones, and a token of another client is
        left alone (§2.1: the server verifies the token was issued to the requesting client). The hint only orders
        the search (§2.1). Revoking either kind revokes the grant: its refresh-token family and its access tokens,
        which the proxy refuses from their next request (later only if a grant-status cache is opted into).
        """
        lookups = [self._grant_of_refresh_token, self._grant_of_access_token]
        if token_type_hint == "access_token":
            lookups.reverse()
        for lookup in lookups:
            grant_id = lookup(route, client_id, token, now)
            if grant_id is not None:
                self._grants.revoke_grant(grant_id, now, REASON_CLIENT_REVOKED)
                grant = self._grants.get_grant(grant_id) if self._audit is not None else None
                user_id = grant.user_id if grant is not None else ""
                if self._audit is not None:
                    self._audit.record(
                        "token.revoked", workspace=route.workspace_name, route_key=route.key, user_id=user_id,
                        client_id=client_id, grant_id=grant_id, hint=token_type_hint or "none",
                    )  # fmt: skip
                return

    def _grant_of_refresh_token(self, route: Route, client_id: str, token: str, now: int) -> str | None:
        ref = refresh_tokens.try_parse(token)
        if ref is None:
            return None
        grant = self._grants.get_grant(ref.grant_id)
        if grant is None or not refresh_tokens.is_authentic(self._secret, ref, grant.refresh_salt):
            return None
        if grant.route_key != route.key or grant.client_id != client_id:
            return None
        return grant.grant_id

    def _grant_of_access_token(self, route: Route, client_id: str, token: str, now: int) -> str | None:
        """The grant of one of our access tokens for this route and client, even if it has expired.

        Verified as the proxy verifies it (:meth:`AccessTokens.verify`: signature, type, issuer, audience), except
        that it may have expired as long ago as a grant can live: an expired token still names a grant worth
        revoking, and the grant bounds its worth.
        """
        if token.count(".") != 2:
            return None
        try:
            claims = self._access_tokens.verify(
                token, route=route, now=now, expired_within=self._policy.refresh_token_absolute_ttl_seconds
            )
        except InvalidAccessToken:
            return None
        grant_id = claims.grant_id
        if claims.client_id != client_id or not grant_id:
            return None
        grant = self._grants.get_grant(grant_id)
        if grant is None or grant.client_id != client_id or grant.route_key != route.key:
            return None
        return grant_id

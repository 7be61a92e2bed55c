"""The token endpoint's domain logic: authorization-code exchange, refresh with rotation, and revocation.

Pure domain code: storage and signing arrive through their ports; no boto3, no HTTP framework.

Ordering rule: every path that writes signs the access token *first* (one KMS Sign) and writes afterwards, so a
signing failure leaves nothing half-done (no consumed code without a token, no rotated family without a token). A
storage failure (:class:`StorageError`) propagates for the caller to answer 503; a single write or one transaction
is all that either grant makes, so it too leaves nothing half-written.

Refresh tokens (see :mod:`gateway.oauth.refresh_tokens`) are issued when the route allows them
(``Server.refresh_tokens``) and the client can use them. MCP 2025-11-25 says nothing about ``offline_access``; SEP-2207
("OIDC-flavored refresh token guidance") says the authorization server SHOULD decide from the client's ``grant_types``
and its own policy, and MAY also treat a requested ``offline_access`` as that signal. Major MCP clients never request
``offline_access`` (Claude Code sends no ``scope`` at all), so requiring it would leave them without refresh tokens.
Hence: ``refresh_tokens`` on the route AND (client supports the refresh_token grant OR ``offline_access`` granted).
``offline_access`` is never put in an access token's ``scope``: it concerns the client and this server, not the
resource (SEP-2207), and it is not echoed as an access-token scope.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.config import OAuthPolicy
from gateway.crypto import pkce
from gateway.crypto.hashing import hash_secret
from gateway.identity.user import SignedInUser
from gateway.oauth import refresh_tokens
from gateway.oauth.authorization import grant_from_code, new_grant
from gateway.oauth.errors import OAuthError
from gateway.oauth.revocation import Revocation
from gateway.oauth.token_parts import TokenResponse, access_scopes, check_resource, requested_scopes, token_type
from gateway.oauth.token_requests import (
    AuthorizationCodeRequest,
    ClientCredentialsRequest,
    JwtBearerRequest,
    RefreshTokenRequest,
)
from gateway.routes import OFFLINE_ACCESS, Route
from gateway.storage.ports import AlreadyExists, CodeNotRedeemable, GrantStore
from gateway.storage.records import AuditKind, Consent, Grant
from gateway.tokens.access_token import AccessTokens

if TYPE_CHECKING:
    from gateway.audit import AuditTrail
    from gateway.oauth.id_jag import IdJag


REASON_CODE_REPLAYED = "authorization code replayed"
REASON_REFRESH_REUSED = "refresh token reused"
REASON_POLICY = "access policy no longer allows the user"


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


class TokenService:
    """One per container (or per request: it holds no request state)."""

    def __init__(
        self,
        *,
        grants: GrantStore,
        access_tokens: AccessTokens,
        shared_secret: bytes,
        policy: OAuthPolicy,
        access_token_ttl_seconds: int,
        audit: AuditTrail | None = None,
    ) -> None:
        self._audit = audit
        self._grants = grants
        self._access_tokens = access_tokens
        self._secret = shared_secret
        self._policy = policy
        self._ttl = access_token_ttl_seconds

    # --- helpers ----------------------------------------------------------------------------------------------

    def _record(
        self, kind: AuditKind, route: Route, user_id: str, client_id: str, grant_id: str, **detail: str | int
    ) -> None:
        if self._audit is not None:
            self._audit.record(
                kind, workspace=route.workspace_name, route_key=route.key, user_id=user_id, client_id=client_id,
                grant_id=grant_id, **detail,
            )  # fmt: skip

    def _issued(self, route: Route, now: int, dpop_jkt: str | None) -> dict[str, str | int]:
        """What the audit trail (the admin console's Issuances) records of an access token: never its value."""
        return {"resource": route.resource, "token_type": token_type(dpop_jkt), "expires_at": now + self.ttl(route)}

    def ttl(self, route: Route) -> int:
        """Access-token lifetime on ``route``: its workspace's ``access_token_ttl_seconds``, else the deployment's."""
        return route.workspace.access_token_ttl_seconds or self._ttl

    def _sign(self, route: Route, grant: Grant, scopes: tuple[str, ...], now: int, jkt: str | None = None) -> str:
        return self._access_tokens.issue(
            route=route,
            subject=grant.user_id,
            client_id=grant.client_id,
            scopes=access_scopes(scopes),
            grant_id=grant.grant_id,
            lifetime_seconds=self.ttl(route),
            now=now,
            jkt=jkt,
        )

    def _refresh_token(self, grant: Grant, generation: int) -> str:
        return refresh_tokens.derive(self._secret, grant.grant_id, grant.refresh_salt, generation)

    def _idle_expiry(self, now: int, absolute_expires_at: int) -> int:
        return min(now + self._policy.refresh_token_idle_ttl_seconds, absolute_expires_at)

    def _within_grace(self, grant: Grant, now: int) -> bool:
        rotated_at = grant.rotated_at
        return rotated_at is not None and now - rotated_at <= self._policy.refresh_token_reuse_grace_seconds

    # --- authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6) ------------------------------------------------------

    def exchange_code(
        self,
        route: Route,
        client_id: str,
        request: AuthorizationCodeRequest,
        now: int,
        *,
        client_supports_refresh: bool = True,
        dpop_jkt: str | None = None,
        public_client: bool = True,
    ) -> TokenResponse:
        """Redeem a code for ``client_id``, which the caller has authenticated (RFC 6749 §4.1.3: "authenticate the
        client if client authentication is included" comes before anything is decided about the code). With
        ``dpop_jkt`` the access token is bound to that key, and so is a public client's grant: its refresh tokens
        then work only with a proof of the same key (RFC 9449 §5)."""
        code_hash = hash_secret(request.code)
        code = self._grants.get_code(code_hash, now)
        if code is None or code.route_key != route.key:
            raise _invalid_grant("the authorization code is unknown or has expired")
        # Whose code it is, and whether this request could have redeemed it, are settled before a replay is: only
        # the code's own client, presenting its PKCE verifier, can show that the code was used by someone else, so
        # only that request revokes (a stranger naming a used code must not end the victim's grant; issue "Fail
        # closed", item 14). PKCE means a thief without the verifier could never have redeemed it in the first place.
        if code.client_id != client_id:  # RFC 6749 §4.1.3: issued to this client
            raise _invalid_grant("the authorization code was issued to another client")
        if not pkce.verify(request.code_verifier, code.code_challenge):  # RFC 7636 §4.6
            raise _invalid_grant("code_verifier does not match the code_challenge")
        if code.redeemed_at is not None:
            # RFC 6749 §4.1.2 and §10.5: a code used twice is refused and what was issued from it revoked.
            self._grants.revoke_grant(code.grant_id, now, REASON_CODE_REPLAYED)
            self._record(
                "grant.revoked", route, code.user_id, code.client_id, code.grant_id, reason=REASON_CODE_REPLAYED
            )
            raise _invalid_grant("the authorization code was already used; tokens issued from it are revoked")
        if code.expires_at <= now:
            raise _invalid_grant("the authorization code is unknown or has expired")
        if request.redirect_uri != code.redirect_uri:  # RFC 6749 §4.1.3: identical to the authorization request's
            raise _invalid_grant("redirect_uri does not match the one of the authorization request")
        check_resource(route, request.resource)

        grant = grant_from_code(code, route, self._policy, now)
        if dpop_jkt is not None and public_client:
            grant = replace(grant, dpop_jkt=dpop_jkt)
        consent = Consent(route.key, client_id, code.user_id, code.scopes, grant.grant_id, now)

        access_token = self._sign(route, grant, code.scopes, now, dpop_jkt)  # sign first: see the module docstring
        try:
            self._grants.redeem_code(code_hash, grant, consent, now)
        except CodeNotRedeemable as problem:
            if problem.replayed is not None:
                # Lost a race with another redemption of the same code: that is a replay too (RFC 6749 §10.5).
                replayed = problem.replayed
                self._grants.revoke_grant(replayed.grant_id, now, REASON_CODE_REPLAYED)
                self._record(
                    "grant.revoked", route, replayed.user_id, replayed.client_id, replayed.grant_id,
                    reason=REASON_CODE_REPLAYED,
                )  # fmt: skip
                raise _invalid_grant(
                    "the authorization code was already used; tokens issued from it are revoked"
                ) from None
            raise _invalid_grant("the authorization code is unknown or has expired") from None
        except AlreadyExists:
            raise _invalid_grant("the authorization code was already used") from None

        issue_refresh = route.server.refresh_tokens and (client_supports_refresh or OFFLINE_ACCESS in code.scopes)
        self._record(
            "token.issued", route, grant.user_id, client_id, grant.grant_id,
            grant_type="authorization_code", scope=" ".join(code.scopes), **self._issued(route, now, dpop_jkt),
        )  # fmt: skip
        return TokenResponse(
            access_token=access_token,
            expires_in=self.ttl(route),
            scope=access_scopes(code.scopes),
            refresh_token=self._refresh_token(grant, 0) if issue_refresh else None,
            token_type=token_type(dpop_jkt),
        )

    # --- client_credentials (RFC 6749 §4.4) --------------------------------------------------------------------------

    def client_credentials(
        self,
        route: Route,
        client_id: str,
        service_identity: str,
        request: ClientCredentialsRequest,
        now: int,
        *,
        dpop_jkt: str | None = None,
    ) -> TokenResponse:
        """An access token for a confidential pre-registered client acting as its service identity.

        The token is the same audience-bound JWT as any other. It rests on a grant of its own (user = the service
        identity), living as long as the token, so the proxy's grant check, ``revoke-client`` and ``revoke-user``
        bite on it like on any grant. No refresh token (RFC 6749 §4.4.3): the client asks again.
        """
        check_resource(route, request.resource)
        if not route.server.access.allows(service_identity, ()):
            raise OAuthError("unauthorized_client", f"the service identity may not use {route.key} (access policy)")
        scopes = requested_scopes(route, request.scope, granted=None)
        grant = new_grant(  # its refresh salt is never used: no refresh token is derived
            route=route,
            client_id=client_id,
            user=SignedInUser(service_identity),
            scopes=scopes,
            now=now,
            absolute_lifetime_seconds=self.ttl(route),
        )
        grant = replace(grant, obtained_by="client_credentials")
        return self._direct(route, grant, "client_credentials", now, dpop_jkt)

    # --- jwt-bearer with an ID-JAG (RFC 7523 §2.1, draft-ietf-oauth-identity-assertion-authz-grant) -------------

    def redeem_id_jag(
        self, route: Route, client_id: str, request: JwtBearerRequest, id_jag: IdJag, now: int, *, dpop_jkt: str | None
    ) -> TokenResponse:
        """An access token for the user an enterprise identity provider vouched for (``id_jag``, verified by
        :class:`gateway.oauth.id_jag.IdJagVerifier`), on a grant of its own: revocable, listed and audited like
        any grant, marked ``id_jag``, living as long as the token. No refresh token: the MCP extension issues none,
        and access ends when the IdP stops issuing ID-JAGs. Scopes: the requested ones (default: the route's) that
        the ID-JAG grants (the draft's §5.2: RFC 6749 §3.3 applies to its ``scope``)."""
        check_resource(route, request.resource)
        if not route.server.access.allows(id_jag.user_id, id_jag.groups):
            raise _invalid_grant(f"the user may not use {route.key} (its access policy)")
        scopes = requested_scopes(route, request.scope, granted=id_jag.scopes)
        grant = new_grant(
            route=route,
            client_id=client_id,
            user=SignedInUser(id_jag.user_id, id_jag.user_name, id_jag.groups),
            scopes=scopes,
            now=now,
            absolute_lifetime_seconds=self.ttl(route),
            signed_in_at=now,
        )
        grant = replace(grant, obtained_by="id_jag")
        return self._direct(route, grant, "jwt-bearer", now, dpop_jkt, issuer=id_jag.issuer)

    def _direct(
        self, route: Route, grant: Grant, grant_type: str, now: int, dpop_jkt: str | None, **detail: str
    ) -> TokenResponse:
        """Sign, then store the grant (one conditional write), audit and answer: a grant made at the token endpoint
        without a code."""
        access_token = self._sign(route, grant, grant.scopes, now, dpop_jkt)  # sign first: see the module docstring
        self._grants.create_grant(grant)
        self._record(
            "token.issued", route, grant.user_id, grant.client_id, grant.grant_id,
            grant_type=grant_type, scope=" ".join(grant.scopes), **detail, **self._issued(route, now, dpop_jkt),
        )  # fmt: skip
        return TokenResponse(
            access_token=access_token,
            expires_in=self.ttl(route),
            scope=access_scopes(grant.scopes),
            token_type=token_type(dpop_jkt),
        )

    # --- refresh_token (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2) -------------------------------------------

    def refresh(
        self, route: Route, client_id: str, request: RefreshTokenRequest, now: int, *, dpop_jkt: str | None = None
    ) -> TokenResponse:
        ref = refresh_tokens.parse(request.refresh_token)
        grant = self._grants.get_grant(ref.grant_id)
        if grant is None or not refresh_tokens.is_authentic(self._secret, ref, grant.refresh_salt):
            raise _invalid_grant("the refresh token is invalid")
        if grant.route_key != route.key:
            raise _invalid_grant("the refresh token was issued for another server")
        if grant.client_id != client_id:  # RFC 6749 §6: bound to the client it was issued to
            raise _invalid_grant("the refresh token was issued to another client")
        if not route.server.refresh_tokens:
            raise _invalid_grant("this server no longer accepts refresh tokens; sign in again")
        if grant.status != "active":
            raise _invalid_grant("the refresh token has been revoked")
        if now >= grant.absolute_expires_at or now >= grant.idle_expires_at:
            raise _invalid_grant("the refresh token has expired; sign in again")
        if grant.dpop_jkt is not None and grant.dpop_jkt != dpop_jkt:
            # RFC 9449 §5: a public client's refresh token is bound to the key of its first DPoP proof.
            raise _invalid_grant("the refresh token is bound to a DPoP key: send a DPoP proof made with that key")
        access = route.server.access
        if (
            not access.allows(grant.user_id, ())
            and now - grant.groups_as_of > self._policy.group_membership_max_age_seconds
        ):
            # The user is let in by group, and the groups are as old as the sign-in that reported them: past the
            # bound the client must sign the user in again, so leaving a group bites within it (issue "Fail
            # closed", item 10). Nothing is revoked: the remembered consent issues the new code without a question.
            raise _invalid_grant(
                "the group memberships this refresh relies on are too old; sign in again to renew them"
            )
        if not access.allows(grant.user_id, grant.user_groups):
            self._grants.revoke_grant(grant.grant_id, now, REASON_POLICY)
            self._record("grant.revoked", route, grant.user_id, client_id, grant.grant_id, reason=REASON_POLICY)
            raise _invalid_grant("the user is no longer allowed to use this server")
        check_resource(route, request.resource)
        scopes = self._narrowed_scopes(grant, request.scope)

        current = grant.refresh_generation
        if ref.generation == current:
            access_token = self._sign(route, grant, scopes, now, dpop_jkt)
            idle = self._idle_expiry(now, grant.absolute_expires_at)
            if self._grants.advance_refresh(grant.grant_id, current, now, idle):
                self._record(
                    "token.refreshed", route, grant.user_id, client_id, grant.grant_id, scope=" ".join(scopes),
                    **self._issued(route, now, dpop_jkt),
                )  # fmt: skip
                return self._response(route, access_token, scopes, self._refresh_token(grant, current + 1), dpop_jkt)
            # Another request rotated this generation concurrently: within the grace period both callers end
            # with the one successor, and nothing is revoked.
            latest = self._grants.get_grant(grant.grant_id)
            if (
                latest is not None
                and latest.status == "active"
                and latest.refresh_generation == current + 1
                and self._within_grace(latest, now)
            ):
                return self._response(route, access_token, scopes, self._refresh_token(latest, current + 1), dpop_jkt)
            if latest is None or latest.status != "active":
                raise _invalid_grant("the refresh token has been revoked")
            return self._reuse(route, grant, now)
        if ref.generation == current - 1 and self._within_grace(grant, now):
            # The just-replaced token again, within the grace period: the same successor, no write.
            access_token = self._sign(route, grant, scopes, now, dpop_jkt)
            return self._response(route, access_token, scopes, self._refresh_token(grant, current), dpop_jkt)
        if ref.generation < current:
            return self._reuse(route, grant, now)
        raise _invalid_grant("the refresh token is invalid")  # a future generation cannot be authentic

    def _reuse(self, route: Route, grant: Grant, now: int) -> TokenResponse:
        # OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: a replaced refresh token used again revokes the whole family.
        self._grants.revoke_grant(grant.grant_id, now, REASON_REFRESH_REUSED)
        self._record("refresh.reuse_detected", route, grant.user_id, grant.client_id, grant.grant_id)
        raise _invalid_grant("the refresh token was already used; the grant is revoked, sign in again")

    def _narrowed_scopes(self, grant: Grant, scope: str | None) -> tuple[str, ...]:
        """RFC 6749 §6: a narrower scope may be asked for; anything not originally granted is ``invalid_scope``.
        Absent, or the original repeated, keeps the grant's scope (issue "Every client", item 5). ``offline_access``
        is not an access-token scope (module docstring): a client that names it when refreshing (it has a refresh
        token, after all; several repeat the metadata's ``scopes_supported``) is not refused for it."""
        if scope is None:
            return grant.scopes
        requested = tuple(name for name in dict.fromkeys(scope.split()) if name != OFFLINE_ACCESS)
        extra = [name for name in requested if name not in grant.scopes]
        if extra:
            raise OAuthError("invalid_scope", f"scope(s) not granted to this client: {' '.join(extra)}")
        return requested or grant.scopes

    def _response(
        self, route: Route, access_token: str, scopes: tuple[str, ...], refresh_token: str, jkt: str | None
    ) -> TokenResponse:
        return TokenResponse(
            access_token=access_token,
            expires_in=self.ttl(route),
            scope=access_scopes(scopes),
            refresh_token=refresh_token,
            token_type=token_type(jkt),
        )

    # --- revocation (RFC 7009) ---------------------------------------------------------------------------------

    def revoke(self, route: Route, client_id: str, token: str, token_type_hint: str | None, now: int) -> None:
        """RFC 7009: :class:`gateway.oauth.revocation.Revocation`."""
        Revocation(
            grants=self._grants,
            access_tokens=self._access_tokens,
            shared_secret=self._secret,
            policy=self._policy,
            audit=self._audit,
        ).revoke(route, client_id, token, token_type_hint, now)

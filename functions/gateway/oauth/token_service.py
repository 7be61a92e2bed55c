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

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.config import OAuthPolicy
from gateway.crypto import pkce
from gateway.crypto.hashing import hash_secret
from gateway.identity.user import SignedInUser
from gateway.oauth import refresh_tokens
from gateway.oauth.authorization import grant_from_code, new_grant
from gateway.oauth.errors import OAuthError
from gateway.oauth.token_requests import AuthorizationCodeRequest, ClientCredentialsRequest, RefreshTokenRequest
from gateway.routes import OFFLINE_ACCESS, Route
from gateway.storage.ports import AlreadyExists, CodeNotRedeemable, GrantStore
from gateway.storage.records import AuditKind, Consent, Grant
from gateway.tokens.access_token import AccessTokens, InvalidAccessToken

if TYPE_CHECKING:
    from gateway.audit import AuditTrail

TOKEN_TYPE_BEARER = "Bearer"

REASON_CODE_REPLAYED = "authorization code replayed"
REASON_REFRESH_REUSED = "refresh token reused"
REASON_POLICY = "access policy no longer allows the user"
REASON_CLIENT_REVOKED = "revoked by the client"


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 6749 §5.1."""

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    refresh_token: str | None = None
    token_type: str = TOKEN_TYPE_BEARER

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "scope": " ".join(self.scope),
        }
        if self.refresh_token is not None:
            body["refresh_token"] = self.refresh_token
        return body


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def check_resource(route: Route, resource: str | None) -> None:
    """RFC 8707 §2: a token for another resource is ``invalid_target``. Absent means this route's resource."""
    if resource is not None and not route.is_resource(resource):
        raise OAuthError("invalid_target", f"this authorization server issues tokens only for {route.resource}")


def _access_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(scope for scope in scopes if scope != OFFLINE_ACCESS)


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

    def _issued(self, route: Route, now: int) -> dict[str, str | int]:
        """What the audit trail (the admin console's Issuances) records of an access token: never its value."""
        return {"resource": route.resource, "token_type": "Bearer", "expires_at": now + self._ttl}

    def _sign(self, route: Route, grant: Grant, scopes: tuple[str, ...], now: int) -> str:
        return self._access_tokens.issue(
            route=route,
            subject=grant.user_id,
            client_id=grant.client_id,
            scopes=_access_scopes(scopes),
            grant_id=grant.grant_id,
            lifetime_seconds=self._ttl,
            now=now,
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
    ) -> TokenResponse:
        """Redeem a code for ``client_id``, which the caller has authenticated (RFC 6749 §4.1.3: "authenticate the
        client if client authentication is included" comes before anything is decided about the code)."""
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
        consent = Consent(route.key, client_id, code.user_id, code.scopes, grant.grant_id, now)

        access_token = self._sign(route, grant, code.scopes, now)  # sign first: see the module docstring
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
            grant_type="authorization_code", scope=" ".join(code.scopes), **self._issued(route, now),
        )  # fmt: skip
        return TokenResponse(
            access_token=access_token,
            expires_in=self._ttl,
            scope=_access_scopes(code.scopes),
            refresh_token=self._refresh_token(grant, 0) if issue_refresh else None,
        )

    # --- client_credentials (RFC 6749 §4.4) --------------------------------------------------------------------------

    def client_credentials(
        self, route: Route, client_id: str, service_identity: str, request: ClientCredentialsRequest, now: int
    ) -> TokenResponse:
        """An access token for a confidential pre-registered client acting as its service identity.

        The token is the same audience-bound JWT as any other. It rests on a grant of its own (user = the service
        identity), living as long as the token, so the proxy's grant check, ``revoke-client`` and ``revoke-user``
        bite on it like on any grant. No refresh token (RFC 6749 §4.4.3): the client asks again.
        """
        check_resource(route, request.resource)
        if not route.server.access.allows(service_identity, ()):
            raise OAuthError("unauthorized_client", f"the service identity may not use {route.key} (access policy)")
        supported = [scope for scope in route.scopes_supported if scope != OFFLINE_ACCESS]
        if request.scope is None:
            scopes = tuple(route.default_scopes)
        else:
            scopes = tuple(dict.fromkeys(request.scope.split()))
            unknown = [scope for scope in scopes if scope not in supported]
            if unknown:
                raise OAuthError("invalid_scope", f"unsupported scope(s): {' '.join(unknown)}")
        grant = new_grant(  # its refresh salt is never used: no refresh token is derived
            route=route,
            client_id=client_id,
            user=SignedInUser(service_identity),
            scopes=scopes,
            now=now,
            absolute_lifetime_seconds=self._ttl,
        )
        access_token = self._sign(route, grant, scopes, now)  # sign first: see the module docstring
        self._grants.create_grant(grant)
        self._record(
            "token.issued", route, service_identity, client_id, grant.grant_id,
            grant_type="client_credentials", scope=" ".join(scopes), **self._issued(route, now),
        )  # fmt: skip
        return TokenResponse(access_token=access_token, expires_in=self._ttl, scope=_access_scopes(scopes))

    # --- refresh_token (RFC 6749 §6, OAuth 2.1 §4.3.1, RFC 9700 §4.14.2) -------------------------------------------

    def refresh(self, route: Route, client_id: str, request: RefreshTokenRequest, now: int) -> TokenResponse:
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
            access_token = self._sign(route, grant, scopes, now)
            idle = self._idle_expiry(now, grant.absolute_expires_at)
            if self._grants.advance_refresh(grant.grant_id, current, now, idle):
                self._record(
                    "token.refreshed", route, grant.user_id, client_id, grant.grant_id, scope=" ".join(scopes),
                    **self._issued(route, now),
                )  # fmt: skip
                return self._response(access_token, scopes, self._refresh_token(grant, current + 1))
            # Another request rotated this generation concurrently: within the grace period both callers end
            # with the one successor, and nothing is revoked.
            latest = self._grants.get_grant(grant.grant_id)
            if (
                latest is not None
                and latest.status == "active"
                and latest.refresh_generation == current + 1
                and self._within_grace(latest, now)
            ):
                return self._response(access_token, scopes, self._refresh_token(latest, current + 1))
            if latest is None or latest.status != "active":
                raise _invalid_grant("the refresh token has been revoked")
            return self._reuse(route, grant, now)
        if ref.generation == current - 1 and self._within_grace(grant, now):
            # The just-replaced token again, within the grace period: the same successor, no write.
            access_token = self._sign(route, grant, scopes, now)
            return self._response(access_token, scopes, self._refresh_token(grant, current))
        if ref.generation < current:
            return self._reuse(route, grant, now)
        raise _invalid_grant("the refresh token is invalid")  # a future generation cannot be authentic

    def _reuse(self, route: Route, grant: Grant, now: int) -> TokenResponse:
        # OAuth 2.1 §4.3.1 / RFC 9700 §4.14.2: a replaced refresh token used again revokes the whole family.
        self._grants.revoke_grant(grant.grant_id, now, REASON_REFRESH_REUSED)
        self._record("refresh.reuse_detected", route, grant.user_id, grant.client_id, grant.grant_id)
        raise _invalid_grant("the refresh token was already used; the grant is revoked, sign in again")

    def _narrowed_scopes(self, grant: Grant, scope: str | None) -> tuple[str, ...]:
        """RFC 6749 §6: a narrower scope may be asked for; anything not originally granted is ``invalid_scope``."""
        if scope is None:
            return grant.scopes
        requested = tuple(dict.fromkeys(scope.split()))
        extra = [name for name in requested if name not in grant.scopes]
        if extra:
            raise OAuthError("invalid_scope", f"scope(s) not granted to this client: {' '.join(extra)}")
        return requested

    def _response(self, access_token: str, scopes: tuple[str, ...], refresh_token: str) -> TokenResponse:
        return TokenResponse(
            access_token=access_token,
            expires_in=self._ttl,
            scope=_access_scopes(scopes),
            refresh_token=refresh_token,
        )

    # --- revocation (RFC 7009) ---------------------------------------------------------------------------------

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
                self._record("token.revoked", route, user_id, client_id, grant_id, hint=token_type_hint or "none")
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

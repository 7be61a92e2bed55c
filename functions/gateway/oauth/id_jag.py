"""Identity Assertion JWT Authorization Grants (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant), redeemed at
/token with ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` (RFC 7523 §2.1) as the MCP extension
``io.modelcontextprotocol/enterprise-managed-authorization`` describes.

A workspace names the enterprise identity providers it trusts (``enterprise_authorization.issuers``: issuer, key set,
the clients that may redeem, the routes). :meth:`IdJagVerifier.verify` checks, each failure an ``invalid_grant``
saying which (RFC 7521 §5.2, the extension's §5.1): header ``typ`` ``oauth-id-jag+jwt`` (RFC 8725 §3.11); an
asymmetric algorithm; ``iss`` one of the workspace's trusted issuers serving this route (exact comparison); the
signature by that issuer's keys (fetched through the SSRF guard); ``aud`` = this route's issuer; ``resource`` = this
route; ``client_id`` = the authenticated client, which the issuer's configuration must also name
(``unauthorized_client`` otherwise); ``exp`` not passed and not further ahead than the issuer's bound, ``iat`` not in
the future; ``jti`` used once (a conditional write shared by every container).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.oauth.enterprise_issuers import trusted_issuers
from gateway.oauth.errors import OAuthError
from gateway.oauth.key_sets import KeySetSource, KeySetUnavailable
from gateway.principals import person_id_problem
from gateway.tokens.foreign_jwts import (
    SKEW_SECONDS,
    InvalidJwt,
    algorithm_of,
    audiences,
    check_lifetime,
    header_of,
    string_claim,
    unverified_claims,
    verify_signature,
)

if TYPE_CHECKING:
    from gateway.config import TrustedIssuer
    from gateway.routes import Route
    from gateway.storage.ports import SingleUseStore

ID_JAG_TYPE = "oauth-id-jag+jwt"
MAX_GROUPS = 200


@dataclass(frozen=True, slots=True)
class IdJag:
    """A verified ID-JAG: who the enterprise IdP vouches for, and what for."""

    issuer: str
    user_id: str
    user_name: str | None
    groups: tuple[str, ...]
    scopes: tuple[str, ...] | None
    """The ``scope`` claim's scopes (None: the claim is absent)."""
    expires_at: int


def _invalid(description: str) -> OAuthError:
    return OAuthError("invalid_grant", f"the ID-JAG is invalid: {description}")


def _same_issuer_url(value: str, issuer: str) -> bool:
    """``aud`` names the authorization server's issuer (RFC 8414); one trailing slash is tolerated, as the
    draft's own examples carry one."""
    return value == issuer or value == f"{issuer}/"


class IdJagVerifier:
    """Verifies ID-JAGs for a route. One per container (the issuers' key sets are cached)."""

    def __init__(self, key_sets: KeySetSource, single_use: SingleUseStore) -> None:
        self._key_sets = key_sets
        self._single_use = single_use

    async def verify(self, assertion: str, route: Route, client_id: str, now: int) -> IdJag:
        """Raises :class:`OAuthError` (``invalid_grant``, or ``unauthorized_client`` for a client the issuer's
        configuration does not name); ``StorageError`` when the used-jti record cannot be written."""
        issuers = trusted_issuers(route)
        if not issuers:
            raise OAuthError("unsupported_grant_type", "this server does not redeem ID-JAGs (jwt-bearer)")
        try:
            header = header_of(assertion)
            if header.get("typ") != ID_JAG_TYPE:
                raise InvalidJwt(f"its typ must be {ID_JAG_TYPE} (the draft's §3)")
            algorithm = algorithm_of(header)
            claimed = string_claim(unverified_claims(assertion), "iss")
        except InvalidJwt as problem:
            raise _invalid(str(problem)) from None
        trusted = next((issuer for issuer in issuers if issuer.issuer == claimed), None)
        if trusted is None:
            raise _invalid(f"its issuer {claimed[:200]!r} is not trusted for {route.key}")
        if client_id not in trusted.clients:
            raise OAuthError("unauthorized_client", f"this client may not redeem ID-JAGs of {trusted.issuer}")
        try:
            keys = await self._key_sets.get(trusted.jwks_uri, now, kid=header.get("kid"))
        except KeySetUnavailable as problem:
            raise _invalid(f"the issuer's keys are unavailable: {problem}") from None
        try:
            claims = verify_signature(assertion, keys.candidates(header.get("kid"), algorithm), algorithm)
            return self._checked(claims, trusted, route, client_id, now)
        except InvalidJwt as problem:
            raise _invalid(str(problem)) from None

    def _checked(self, claims: dict[str, Any], trusted: TrustedIssuer, route: Route, client_id: str, now: int) -> IdJag:
        if string_claim(claims, "iss") != trusted.issuer:
            raise InvalidJwt("its iss changed")
        if not any(_same_issuer_url(audience, route.issuer) for audience in audiences(claims)):
            raise InvalidJwt(f"its aud must be this authorization server's issuer, {route.issuer}")
        resource = claims.get("resource")
        resources = [resource] if isinstance(resource, str) else resource if isinstance(resource, list) else []
        if not any(isinstance(item, str) and route.is_resource(item) for item in resources):
            raise InvalidJwt(f"its resource must be this MCP server, {route.resource}")
        if string_claim(claims, "client_id") != client_id:
            raise InvalidJwt("it was issued to another client (client_id)")
        expires_at = check_lifetime(claims, now, max_lifetime=trusted.max_lifetime_seconds, require_iat=True)
        jti = string_claim(claims, "jti", max_length=256)
        user_id = string_claim(claims, trusted.user_id_claim, max_length=512)
        problem = person_id_problem(user_id)
        if problem is not None:
            raise InvalidJwt(f"its {trusted.user_id_claim}: {problem}")
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise InvalidJwt("its scope must be a space-separated string")
        key = "id-jag#" + hashlib.sha256(f"{trusted.issuer}\0{jti}".encode()).hexdigest()
        if not self._single_use.use(key, expires_at + SKEW_SECONDS, now):
            raise InvalidJwt("it was already redeemed (its jti is single-use)")
        name = claims.get(trusted.name_claim)
        groups = claims.get(trusted.groups_claim)
        return IdJag(
            issuer=trusted.issuer,
            user_id=user_id,
            user_name=name[:200] if isinstance(name, str) and name else None,
            groups=tuple(g for g in groups[:MAX_GROUPS] if isinstance(g, str)) if isinstance(groups, list) else (),
            scopes=tuple(dict.fromkeys(scope.split())) if isinstance(scope, str) else None,
            expires_at=expires_at,
        )

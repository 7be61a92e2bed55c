"""Which enterprise identity providers a route trusts for ID-JAGs (docs/enterprise.md), and the names the metadata
advertises for them. Importing nothing heavy: the metadata function reads it on its cold start."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import TrustedIssuer
    from gateway.routes import Route

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"  # RFC 7523 §2.1
ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"  # authorization_grant_profiles_supported


def trusted_issuers(route: Route) -> list[TrustedIssuer]:
    """The identity providers whose ID-JAGs this route's token endpoint redeems (none: the grant is not offered)."""
    enterprise = route.workspace.enterprise_authorization
    if enterprise is None:
        return []
    return [issuer for issuer in enterprise.issuers if not issuer.servers or route.server_name in issuer.servers]

"""The discovery documents the gateway *publishes* for each route (the server side; the client side, finding an
upstream's authorization server, is :mod:`gateway.upstream.metadata_discovery`): Protected Resource Metadata
(RFC 9728) and authorization-server metadata (RFC 8414, and the OpenID Connect Discovery form that MCP clients also
try).

Each route is its own protected resource *and* its own issuer (``{base}/{workspace}/{server}``), so a registration,
a code and a token all belong to exactly one route.
"""

from __future__ import annotations

from typing import Any

from gateway.oauth.enterprise_issuers import ID_JAG_PROFILE, JWT_BEARER_GRANT, trusted_issuers
from gateway.routes import Route
from gateway.tokens.algorithms import ASYMMETRIC_ALGORITHMS

DPOP_ALGORITHMS = ASYMMETRIC_ALGORITHMS  # RFC 9449 §5.1: asymmetric only, as gateway.tokens.dpop verifies them

GRANT_TYPES = ["authorization_code", "refresh_token"]
CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def jwks_uri(base_url: str) -> str:
    return f"{base_url}/.well-known/jwks.json"


def protected_resource_metadata(route: Route) -> dict[str, Any]:
    """RFC 9728 §2. ``resource`` is the route URL exactly: clients compare it with the URL they were given."""
    metadata: dict[str, Any] = {
        "resource": route.resource,
        "authorization_servers": [route.issuer],
        "scopes_supported": route.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": route.title,
    }
    if route.workspace.dpop.required:
        # RFC 9728 §2 (with RFC 9449): the MCP endpoint takes DPoP-bound tokens only, with proofs of these algorithms.
        # (Elsewhere DPoP is accepted but Bearer is the default: the document stays as bearer-only clients know it.)
        metadata["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
        metadata["dpop_bound_access_tokens_required"] = True
    return metadata


def grant_types(route: Route) -> list[str]:
    """What the route's token endpoint accepts: ``client_credentials`` only where a pre-registered client bound to
    a service identity may use the route."""
    supported = GRANT_TYPES if route.server.refresh_tokens else GRANT_TYPES[:1]
    if any(
        client.service_identity and (not client.servers or route.server_name in client.servers)
        for client in route.workspace.clients
    ):
        supported = [*supported, "client_credentials"]
    if trusted_issuers(route):  # enterprise-managed authorization: ID-JAGs redeemed here
        supported = [*supported, JWT_BEARER_GRANT]
    return supported


def authorization_server_metadata(route: Route, *, openid_form: bool = False) -> dict[str, Any]:
    """RFC 8414 §2. ``issuer`` equals the route's issuer exactly (no trailing slash), as §3.3 requires."""
    metadata: dict[str, Any] = {
        "issuer": route.issuer,
        "authorization_endpoint": route.endpoint("authorize"),
        "token_endpoint": route.endpoint("token"),
        "registration_endpoint": route.endpoint("register"),
        "revocation_endpoint": route.endpoint("revoke"),
        "jwks_uri": jwks_uri(route.base_url),
        "scopes_supported": route.scopes_supported,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types(route),
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        # RFC 8414 §2 / RFC 7523: private_key_jwt assertions are verified with asymmetric algorithms only.
        "token_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASYMMETRIC_ALGORITHMS),
        # RFC 9449 §5.1: DPoP proofs on /token bind the tokens to the client's key.
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "code_challenge_methods_supported": ["S256"],
        # RFC 9207: the authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": True,
        # MCP 2025-11-25 "Client ID Metadata Documents": an https client_id is fetched and validated.
        "client_id_metadata_document_supported": True,
    }
    if trusted_issuers(route):
        # draft-ietf-oauth-identity-assertion-authz-grant: which jwt-bearer profile the grant type above means.
        metadata["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
    if openid_form:
        # OpenID Connect Discovery 1.0 §3 requires these; strict parsers reject the document without them.
        metadata["subject_types_supported"] = ["public"]
        metadata["id_token_signing_alg_values_supported"] = ["RS256"]
    return metadata

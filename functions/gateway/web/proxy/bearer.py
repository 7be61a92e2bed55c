"""Bearer tokens on the MCP endpoint: extraction and the ``WWW-Authenticate`` challenge (RFC 6750 §3, RFC 9728 §5.1,
MCP 2025-11-25 §Authorization: the 401 points the client at the route's Protected Resource Metadata)."""

from __future__ import annotations

from gateway.routes import Route


def dpop_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: DPoP <token>`` header (RFC 9449 §7.1), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "dpop" and token else None


def dpop_challenge(description: str, algorithms: tuple[str, ...], *, error: str = "invalid_dpop_proof") -> str:
    """RFC 9449 §7.1: the ``DPoP`` challenge, with the algorithms proofs may use."""
    return f'DPoP error="{error}", error_description="{_quote(description)}", algs="{" ".join(algorithms)}"'


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def challenge(route: Route, *, error: str | None = None, description: str | None = None) -> str:
    parts = [
        f'resource_metadata="{route.resource_metadata_url}"',
        f'scope="{" ".join(route.default_scopes)}"',
    ]
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_quote(description)}"')
    return "Bearer " + ", ".join(parts)

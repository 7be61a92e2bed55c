"""What the token endpoint's grant types share: the token response (RFC 6749 §5.1; RFC 9449 §5.1 for its DPoP
type), the resource check (RFC 8707) and the scopes of a grant made without consent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.oauth.errors import OAuthError
from gateway.routes import OFFLINE_ACCESS, Route

TOKEN_TYPE_BEARER = "Bearer"
TOKEN_TYPE_DPOP = "DPoP"


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


def check_resource(route: Route, resource: str | None) -> None:
    """RFC 8707 §2: a token for another resource is ``invalid_target``. Absent means this route's resource."""
    if resource is not None and not route.is_resource(resource):
        raise OAuthError("invalid_target", f"this authorization server issues tokens only for {route.resource}")


def access_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    return tuple(scope for scope in scopes if scope != OFFLINE_ACCESS)


def token_type(jkt: str | None) -> str:
    return TOKEN_TYPE_BEARER if jkt is None else TOKEN_TYPE_DPOP  # RFC 9449 §5.1


def requested_scopes(route: Route, scope: str | None, *, granted: tuple[str, ...] | None) -> tuple[str, ...]:
    """The scopes of a grant made without consent: the requested ones (absent: the route's defaults), each one the
    route offers and, with ``granted`` (an ID-JAG's ``scope``), one it grants; none left is ``invalid_scope``."""
    supported = [name for name in route.scopes_supported if name != OFFLINE_ACCESS]
    requested = tuple(dict.fromkeys(scope.split())) if scope is not None else tuple(route.default_scopes)
    unknown = [name for name in requested if name not in supported]  # offline_access too: no refresh token here
    if unknown:
        raise OAuthError("invalid_scope", f"unsupported scope(s): {' '.join(unknown)}")
    kept = requested
    if granted is not None:
        kept = tuple(name for name in kept if name in granted)
        if not kept:
            raise OAuthError("invalid_scope", "the ID-JAG grants none of the requested scopes")
    return kept

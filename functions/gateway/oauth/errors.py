"""OAuth errors as domain exceptions. One exception handler per app maps them to HTTP (JSON for the token, register
and revoke endpoints; a redirect or an HTML page for /authorize)."""

from __future__ import annotations

from typing import Literal

# RFC 6749 §4.1.2.1 / §5.2, RFC 7591 §3.2.2, RFC 7009 §2.2.1, RFC 6750 §3.1.
ErrorCode = Literal[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "unsupported_response_type",
    "server_error",
    "temporarily_unavailable",
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "unsupported_token_type",
    "invalid_target",
    "invalid_dpop_proof",  # RFC 9449 §5
    "use_dpop_nonce",  # RFC 9449 §8
]

_STATUS: dict[str, int] = {
    "invalid_client": 401,
    "server_error": 500,
    "temporarily_unavailable": 503,
}


class OAuthError(Exception):
    """An error the client is told about, with a readable description (never a secret in it)."""

    def __init__(self, error: ErrorCode, description: str, status_code: int | None = None) -> None:
        super().__init__(description)
        self.error: ErrorCode = error
        self.description = description
        self.status_code = status_code if status_code is not None else _STATUS.get(error, 400)
        self.headers: dict[str, str] = {}
        """Response headers the error needs (a ``WWW-Authenticate`` challenge, a ``DPoP-Nonce``)."""

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

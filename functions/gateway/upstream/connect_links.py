"""Connect links: the URL a user follows to (re)connect an upstream account, e.g. from a ``-32042`` error.

``{base}/{ws}/{server}/connect?for=<token>``, where the token is ``v1.{subject}.{expires_at}.{mac}`` — HMAC-SHA256
under the deployment's shared secret over the route and subject. A link is **bound** to a subject but **not
pre-authenticated**: whoever opens it signs in at the workspace's identity provider first, and the connection
proceeds only when the signed-in user is that subject (a per-user link), or a workspace admin (a ``shared`` link).
So a link leaked from a log or a chat cannot connect someone else's account, and an expired one is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from gateway.routes import Route

SHARED_SUBJECT = "shared"
LINK_SECONDS = 7 * 86400
_CONTEXT = b"mcp-gateway/connect-link/v1\x00"


@dataclass(frozen=True, slots=True)
class ConnectLink:
    subject: str  # user id, or "shared"
    expires_at: int

    @property
    def shared(self) -> bool:
        return self.subject == SHARED_SUBJECT


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(route_key: str, encoded_subject: str, expires_at: int, secret: bytes) -> str:
    message = _CONTEXT + f"{route_key}\x00{encoded_subject}\x00{expires_at}".encode()
    return _b64(hmac.new(secret, message, hashlib.sha256).digest())


def link_token(route: Route, subject: str, secret: bytes, now: int, ttl_seconds: int = LINK_SECONDS) -> str:
    encoded = _b64(subject.encode())
    expires_at = now + ttl_seconds
    return f"v1.{encoded}.{expires_at}.{_mac(route.key, encoded, expires_at, secret)}"


def connect_url(route: Route, subject: str, secret: bytes, now: int, ttl_seconds: int = LINK_SECONDS) -> str:
    return route.connect_endpoint({"for": link_token(route, subject, secret, now, ttl_seconds)})


def read_link(token: str, route: Route, secret: bytes, now: int) -> ConnectLink | None:
    """The link's subject if ``token`` was made for ``route`` by this deployment and has not expired, else None."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "v1" or len(token) > 1024 or not parts[2].isdigit():
        return None
    _, encoded, expires, mac = parts
    expires_at = int(expires)
    if not hmac.compare_digest(mac.encode(), _mac(route.key, encoded, expires_at, secret).encode()):
        return None
    if expires_at <= now:
        return None
    try:
        subject = _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return ConnectLink(subject, expires_at)

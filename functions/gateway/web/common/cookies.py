"""Signed cookies that bind a browser to a pending authorization.

The cookie holds the pending authorization's id, signed with HMAC-SHA256 under the deployment's shared secret, so a
browser cannot swap in another pending id and every container can verify it without a store lookup. The flow's URLs
also carry the pending id; a request is accepted only when the URL and the cookie name the same pending
authorization, which ties the sign-in and the consent to the browser that started them (RFC 6749 §10.12, CSRF).
The consent form additionally carries the pending record's CSRF token, compared in constant time.

Each pending authorization has its own cookie name (derived from its id), so a client that authorizes several routes
at once (several browser tabs) does not make one flow overwrite another's cookie.

Attributes: ``HttpOnly``, ``SameSite=Lax`` (the IdP's callback is a top-level GET navigation, which Lax allows),
``Path=/``, and on https the ``__Host-`` prefix with ``Secure`` (RFC 6265bis §4.1.3.2). On a plain-http dev URL
(``http://127.0.0.1``) neither is possible, so the plain name is used without ``Secure``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from starlette.responses import Response

_PREFIX = "mcpgw-p-"
_CONTEXT = b"mcp-gateway/pending-cookie/v1\x00"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_secure(base_url: str) -> bool:
    return base_url.startswith("https://")


def cookie_name(pending_id: str, base_url: str) -> str:
    """The name of the cookie bound to ``pending_id``: public, so it reveals only a short hash of the id."""
    suffix = _b64(hashlib.sha256(pending_id.encode()).digest()[:9])
    name = f"{_PREFIX}{suffix}"
    return f"__Host-{name}" if is_secure(base_url) else name


def _mac(name: str, value: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, _CONTEXT + name.encode() + b"\x00" + value.encode(), hashlib.sha256).digest())


def sign(name: str, value: str, secret: bytes) -> str:
    """``value.mac``: the MAC covers the cookie name too, so a value cannot be moved to another cookie."""
    return f"{value}.{_mac(name, value, secret)}"


def unsign(name: str, signed: str, secret: bytes) -> str | None:
    """The value if the signature is valid, else None (constant-time comparison)."""
    value, dot, mac = signed.rpartition(".")
    if not dot or not hmac.compare_digest(mac.encode(), _mac(name, value, secret).encode()):
        return None
    return value


def set_pending_cookie(response: Response, pending_id: str, base_url: str, secret: bytes, max_age: int) -> None:
    name = cookie_name(pending_id, base_url)
    response.set_cookie(
        name,
        sign(name, pending_id, secret),
        max_age=max_age,
        path="/",
        secure=is_secure(base_url),
        httponly=True,
        samesite="lax",
    )


def clear_pending_cookie(response: Response, pending_id: str, base_url: str) -> None:
    response.delete_cookie(
        cookie_name(pending_id, base_url), path="/", secure=is_secure(base_url), httponly=True, samesite="lax"
    )


def holds_pending(cookies: Mapping[str, str], pending_id: str, base_url: str, secret: bytes) -> bool:
    """Whether this browser's cookies prove it started the pending authorization ``pending_id``."""
    name = cookie_name(pending_id, base_url)
    signed = cookies.get(name)
    if signed is None:
        return False
    value = unsign(name, signed, secret)
    return value is not None and hmac.compare_digest(value.encode(), pending_id.encode())

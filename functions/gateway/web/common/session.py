"""The workspace sign-in session: one signed cookie per workspace, set by every successful sign-in.

A user who signs in for an MCP client's consent, to connect an upstream account, or on My connections gets the
session cookie of the workspace; My connections (:mod:`gateway.web.authorize.connections`) then needs no second sign-in
within its lifetime (:data:`SESSION_SECONDS`). The consent flow itself still signs the user in at every
authorization: the session only spares the user's own pages a second sign-in.

The cookie is stateless, like the pending-authorization cookies (:mod:`gateway.web.common.cookies`): its value is the
session's fields, base64url JSON, with an HMAC-SHA256 under the deployment's shared secret, so every container can
verify it without a store lookup, and a browser cannot change who it names or extend its expiry. Each sign-in draws
a new random session id; the CSRF token of the session's forms is an HMAC of that id and expiry
(:func:`csrf_token`), so a token is valid only with the cookie of the session that showed it, and no longer than it.
Signing out deletes the cookie; a copy taken before stays valid until its expiry (at most :data:`SESSION_SECONDS`),
which is why the lifetime is short.

Attributes as for the other cookies: ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and on https the ``__Host-`` prefix
with ``Secure`` (RFC 6265bis §4.1.3.2).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.responses import Response

from gateway.identity.user import SignedInUser
from gateway.web.common import cookies

SESSION_SECONDS = 900
_NAME = "mcpgw-session"
_MAX_DISPLAY_NAME = 100  # a cookie holds at most 4 KB; an IdP's name claim is free text


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in to ``workspace`` in this browser, until ``expires_at`` (epoch seconds)."""

    workspace: str
    user_id: str
    name: str | None
    session_id: str
    expires_at: int

    @property
    def display_name(self) -> str:
        return self.name or self.user_id


def cookie_name(workspace: str, base_url: str) -> str:
    name = f"{_NAME}-{workspace}"  # workspace names are slugs: valid in a cookie name
    return f"__Host-{name}" if cookies.is_secure(base_url) else name


def _mac_name(workspace: str) -> str:
    return f"session:{workspace}"  # the MAC covers the workspace: a session cannot be moved to another one


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def start(response: Response, user: SignedInUser, workspace: str, *, base_url: str, secret: bytes, now: int) -> Session:
    """A new session of ``user`` in ``workspace``, its cookie set on ``response``."""
    session = Session(
        workspace=workspace,
        user_id=user.id,
        name=(user.name or "")[:_MAX_DISPLAY_NAME] or None,
        session_id=secrets.token_urlsafe(18),
        expires_at=now + SESSION_SECONDS,
    )
    fields = {"u": session.user_id, "n": session.name, "s": session.session_id, "e": session.expires_at}
    value = _b64encode(json.dumps(fields, separators=(",", ":")).encode())
    response.set_cookie(
        cookie_name(workspace, base_url),
        cookies.sign(_mac_name(workspace), value, secret),
        max_age=SESSION_SECONDS,
        path="/",
        secure=cookies.is_secure(base_url),
        httponly=True,
        samesite="lax",
    )
    return session


def current(
    request_cookies: Mapping[str, str], workspace: str, *, base_url: str, secret: bytes, now: int
) -> Session | None:
    """The browser's unexpired, untampered session in ``workspace``, else None."""
    signed = request_cookies.get(cookie_name(workspace, base_url))
    value = cookies.unsign(_mac_name(workspace), signed, secret) if signed else None
    if value is None:
        return None
    try:
        fields = json.loads(_b64decode(value))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(fields, dict):
        return None
    user_id, name, session_id, expires_at = fields.get("u"), fields.get("n"), fields.get("s"), fields.get("e")
    if not (isinstance(user_id, str) and user_id and isinstance(session_id, str) and session_id):
        return None
    if not isinstance(name, str | None) or not isinstance(expires_at, int) or expires_at <= now:
        return None
    return Session(workspace, user_id, name, session_id, expires_at)


def end(response: Response, workspace: str, *, base_url: str) -> None:
    """Sign out: the browser forgets the session's cookie."""
    response.delete_cookie(
        cookie_name(workspace, base_url), path="/", secure=cookies.is_secure(base_url), httponly=True, samesite="lax"
    )


def csrf_token(session: Session, secret: bytes, purpose: str) -> str:
    """The CSRF token of ``session``'s forms for ``purpose`` (e.g. ``"connections"``): bound to this session (its
    random id and expiry), so it changes at every sign-in and is refused once the session has ended."""
    message = "\x00".join(
        ("session-csrf", purpose, session.workspace, session.user_id, session.session_id, str(session.expires_at))
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session: Session, secret: bytes, purpose: str, presented: object) -> bool:
    expected = csrf_token(session, secret, purpose)
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())

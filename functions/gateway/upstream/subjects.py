"""Whose upstream credential a call uses: the user's own (``mode: per_user``) or the route's shared account
(``mode: shared``, connected by a workspace admin)."""

from __future__ import annotations

from gateway.config import OAuthUpstreamAuth
from gateway.routes import Route
from gateway.upstream.connect_links import SHARED_SUBJECT


class UnusableUserId(ValueError):
    """A user id that cannot own a credential (it could collide with the route's reserved subjects)."""


def is_shared(route: Route) -> bool:
    auth = route.server.auth
    return isinstance(auth, OAuthUpstreamAuth) and auth.mode == "shared"


def subject_for(route: Route, user_id: str) -> str:
    if is_shared(route):
        return SHARED_SUBJECT
    if not user_id or user_id.startswith("#"):
        raise UnusableUserId("user ids starting with '#' are reserved")  # see client_registration.REGISTRATION_SUBJECT
    return user_id


def may_connect(route: Route, subject: str, user_id: str) -> bool:
    """Whether the signed-in ``user_id`` may connect the credential of ``subject``: their own, or as an admin
    of the workspace the shared account."""
    if is_shared(route):
        return subject == SHARED_SUBJECT and user_id in route.workspace.admins
    return subject == user_id and not user_id.startswith("#")

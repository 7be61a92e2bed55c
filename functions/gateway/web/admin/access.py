"""Who may use the admin console: a browser signed in to the workspace (its session cookie,
:mod:`gateway.web.common.session`, set by every sign-in through the workspace's identity provider) whose user is one
of the workspace's ``admins``. Anyone else is refused: signed out, the console sends the browser through the
workspace's sign-in (the authorize function's ``/{ws}/admin/sign-in``, the same flow as consent) and the JSON API
answers 401; signed in as someone who is not an admin, 403.

Every request that changes something carries the session's CSRF token (bound to the session: it changes at each
sign-in and ends with it): a form field for the console's forms, the ``X-CSRF-Token`` header for the JSON API (a
header no cross-site form can send, and no cross-site script may without CORS, which this function never grants).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from gateway.config import GatewayConfig, Workspace
from gateway.settings import Settings
from gateway.web.common import session
from gateway.web.common.services import GatewayState
from gateway.web.common.session import Session

if TYPE_CHECKING:
    from gateway.operations.service import OperatorService

CSRF_PURPOSE = "admin-console"
CSRF_HEADER = "x-csrf-token"


class AdminServices(GatewayState, Protocol):
    """What the admin function needs of its container."""

    config: GatewayConfig
    settings: Settings

    @property
    def shared_secret(self) -> bytes: ...

    def operator_service(self, config: GatewayConfig | None = None) -> OperatorService: ...


class ConsoleRefusal(Exception):
    """The request may not use the console; ``status`` 401 (signed out), 403 (not an admin) or 404 (no such
    workspace). The console shows a page, the JSON API a JSON error."""

    def __init__(self, status: int, workspace: str, message: str, *, signed_in: Session | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.workspace = workspace
        self.message = message
        self.signed_in = signed_in


@dataclass(frozen=True, slots=True)
class Admin:
    """A signed-in administrator of ``workspace``, and what the console's requests need with them."""

    workspace: str
    settings: Workspace
    session: Session
    services: AdminServices

    @property
    def user_id(self) -> str:
        return self.session.user_id

    @property
    def acting_as(self) -> str:
        """How the audit trail names who acted: the console, and the administrator who used it."""
        return f"console:{self.session.user_id}"

    @property
    def csrf(self) -> str:
        return session.csrf_token(self.session, self.services.shared_secret, CSRF_PURPOSE)

    def csrf_matches(self, presented: object) -> bool:
        return session.csrf_matches(self.session, self.services.shared_secret, CSRF_PURPOSE, presented)

    def operator(self) -> OperatorService:
        return self.services.operator_service(self.services.config)

    def now(self) -> int:
        return self.services.now()


def console_url(base_url: str, workspace: str, page: str = "", **query: str) -> str:
    url = f"{base_url}/{quote(workspace)}/admin" + (f"/{page}" if page else "")
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return url


def sign_in_url(base_url: str, workspace: str) -> str:
    """Where a signed-out browser starts the workspace's sign-in for the console (served by the authorize function,
    which holds the sign-in flow)."""
    return f"{base_url}/{quote(workspace)}/admin/sign-in"


def admin_of(services: AdminServices, workspace: str, cookies: Mapping[str, str]) -> Admin:
    """The signed-in administrator of ``workspace``, or :class:`ConsoleRefusal`."""
    settings = services.routes.workspace(workspace)
    if settings is None:
        raise ConsoleRefusal(404, workspace, f"There is no workspace {workspace!r} on this gateway.")
    signed_in = session.current(
        cookies, workspace, base_url=services.base_url, secret=services.shared_secret, now=services.now()
    )
    if signed_in is None:
        raise ConsoleRefusal(401, workspace, "Sign in with the workspace's identity provider to use the console.")
    if signed_in.user_id not in settings.admins:
        raise ConsoleRefusal(
            403,
            workspace,
            f"{signed_in.display_name} is signed in, but is not an administrator of this workspace. The workspace's "
            "configuration names its administrators (workspaces.<name>.admins).",
            signed_in=signed_in,
        )
    return Admin(workspace, settings, signed_in, services)

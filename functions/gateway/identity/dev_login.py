"""The built-in development login: users and passwords listed in the configuration.

Meant for ``make dev`` and tests. It is refused in a deployed stage unless the workspace sets
``allow_in_deployed_stage`` (a deliberate, visible choice in the configuration).
"""

from __future__ import annotations

import hmac

from gateway.config import DevLoginProvider, DevUser
from gateway.identity.user import SignedInUser
from gateway.settings import Settings

# Compared against when the username is unknown, so a wrong username costs the same as a wrong password. Constructed,
# not validated: validating would build DevUser's validator at import, in every cold start of the authorize function.
_NO_USER = DevUser.model_construct(id="\x00", password="\x00" * 32)


def is_allowed(provider: DevLoginProvider, settings: Settings) -> bool:
    """False in a deployed stage unless the configuration explicitly enables the dev login there."""
    return not settings.is_deployed or provider.allow_in_deployed_stage


def refusal_reason(settings: Settings) -> str:
    return (
        f"This workspace signs users in with the built-in development login, which is disabled in the "
        f"{settings.stage!r} stage. An administrator must configure an OpenID Connect identity provider "
        "(or set identity_provider.allow_in_deployed_stage: true, for a test deployment only)."
    )


def authenticate(provider: DevLoginProvider, username: str, password: str) -> SignedInUser | None:
    """The user whose id and password match, else None. Passwords are compared in constant time."""
    found = next((user for user in provider.users if user.id == username), None)
    candidate = found or _NO_USER
    password_ok = hmac.compare_digest(password.encode(), candidate.password.encode())
    if found is None or not password_ok:
        return None
    return SignedInUser(id=found.id, name=found.name, groups=tuple(found.groups))

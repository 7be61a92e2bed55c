"""The built-in development login."""

from __future__ import annotations

from gateway.config import DevLoginProvider
from gateway.identity import dev_login
from gateway.identity.user import SignedInUser
from gateway.settings import Settings

PROVIDER = DevLoginProvider.model_validate(
    {"type": "dev", "users": [{"id": "alice", "password": "alice-password", "name": "Alice", "groups": ["eng"]}]}
)


def test_the_right_password_signs_the_user_in() -> None:
    assert dev_login.authenticate(PROVIDER, "alice", "alice-password") == SignedInUser("alice", "Alice", ("eng",))


def test_a_wrong_password_or_unknown_user_is_refused() -> None:
    assert dev_login.authenticate(PROVIDER, "alice", "alice-passwor") is None
    assert dev_login.authenticate(PROVIDER, "alice", "") is None
    assert dev_login.authenticate(PROVIDER, "mallory", "alice-password") is None


def test_refused_in_a_deployed_stage_unless_enabled() -> None:
    prod = Settings(config="x", stage="prod")
    assert dev_login.is_allowed(PROVIDER, Settings(config="x", stage="local"))
    assert not dev_login.is_allowed(PROVIDER, prod)
    assert dev_login.is_allowed(PROVIDER.model_copy(update={"allow_in_deployed_stage": True}), prod)
    assert "'prod'" in dev_login.refusal_reason(prod)

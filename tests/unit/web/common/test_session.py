"""The workspace sign-in session cookie (web/session.py): only an untampered, unexpired cookie of this workspace names a
user; anything else, however it is shaped, is no session (never an error); its CSRF token is bound to it."""

from __future__ import annotations

import base64
import json

import pytest
from starlette.responses import Response

from gateway.identity.user import SignedInUser
from gateway.web.common import cookies, session

SECRET = b"unit-test-shared-secret-0123456789abcdef"
BASE = "https://gw.example.com"
NOW = 1_800_000_000
ALICE = SignedInUser("alice", "Alice Example")


def started(user: SignedInUser = ALICE, workspace: str = "demo") -> dict[str, str]:
    """The cookie jar of a browser after signing in to ``workspace``."""
    response = Response()
    session.start(response, user, workspace, base_url=BASE, secret=SECRET, now=NOW)
    header = response.headers["set-cookie"]
    name, _, rest = header.partition("=")
    assert "HttpOnly" in header and "Secure" in header and "SameSite=lax" in header and "Path=/" in header
    return {name: rest.split(";")[0]}


def test_a_sign_in_names_the_user_until_the_session_expires() -> None:
    jar = started()
    assert list(jar) == ["__Host-mcpgw-session-demo"]

    found = session.current(jar, "demo", base_url=BASE, secret=SECRET, now=NOW + 1)

    assert found is not None and found.user_id == "alice" and found.display_name == "Alice Example"
    assert session.current(jar, "demo", base_url=BASE, secret=SECRET, now=NOW + session.SESSION_SECONDS) is None


def test_a_session_of_another_workspace_or_under_another_secret_is_no_session() -> None:
    jar = started(workspace="other")
    moved = {"__Host-mcpgw-session-demo": jar["__Host-mcpgw-session-other"]}

    assert session.current(moved, "demo", base_url=BASE, secret=SECRET, now=NOW) is None
    assert session.current(jar, "other", base_url=BASE, secret=b"another-secret", now=NOW) is None


def _signed(payload: object, raw: bytes | None = None) -> dict[str, str]:
    """A cookie whose MAC is right but whose content is ``payload`` (as if the secret had been used by mistake)."""
    data = raw if raw is not None else json.dumps(payload).encode()
    value = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return {"__Host-mcpgw-session-demo": cookies.sign("session:demo", value, SECRET)}


@pytest.mark.parametrize(
    "jar",
    [
        {"__Host-mcpgw-session-demo": "not-signed"},
        {"__Host-mcpgw-session-demo": ""},
        {"__Host-mcpgw-session-demo": "eyJ1IjoiYWxpY2UifQ.forged"},
        _signed(None, raw=b"\xff\xfe not json"),
        _signed(["alice"]),
        _signed({"u": "alice", "s": "x"}),  # no expiry
        _signed({"u": "", "s": "x", "e": NOW + 60}),
        _signed({"u": "alice", "s": "", "e": NOW + 60}),
        _signed({"u": "alice", "s": "x", "e": "tomorrow"}),
        _signed({"u": "alice", "s": "x", "e": NOW + 60, "n": 42}),
        _signed({"u": 7, "s": "x", "e": NOW + 60}),
    ],
)
def test_anything_but_a_valid_session_is_no_session(jar: dict[str, str]) -> None:
    assert session.current(jar, "demo", base_url=BASE, secret=SECRET, now=NOW) is None


def test_a_long_display_name_is_cut_to_keep_the_cookie_small() -> None:
    jar = started(SignedInUser("alice", "A" * 5000))
    found = session.current(jar, "demo", base_url=BASE, secret=SECRET, now=NOW)
    assert found is not None and found.name == "A" * 100
    assert len(next(iter(jar.values()))) < 400


def test_the_csrf_token_differs_per_session_and_purpose() -> None:
    first = session.current(started(), "demo", base_url=BASE, secret=SECRET, now=NOW)
    second = session.current(started(), "demo", base_url=BASE, secret=SECRET, now=NOW)
    assert first is not None and second is not None

    token = session.csrf_token(first, SECRET, "connections")

    assert session.csrf_matches(first, SECRET, "connections", token)
    assert not session.csrf_matches(second, SECRET, "connections", token)
    assert not session.csrf_matches(first, SECRET, "admin", token)
    assert not session.csrf_matches(first, SECRET, "connections", None)


def test_on_plain_http_the_cookie_has_no_host_prefix_and_no_secure() -> None:
    response = Response()
    session.start(response, SignedInUser("alice"), "demo", base_url="http://127.0.0.1:9000", secret=SECRET, now=NOW)
    header = response.headers["set-cookie"]
    assert header.startswith("mcpgw-session-demo=") and "Secure" not in header

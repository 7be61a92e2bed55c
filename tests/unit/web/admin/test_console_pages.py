"""The console's pages: a signed-out browser is sent through the workspace's sign-in (and comes back to the console),
someone who is not an admin gets a clear 403 page, every page has the strict headers, a change needs the session's
CSRF token (a form from elsewhere changes nothing), and each view renders with its data."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from gateway.runtime import Runtime
from gateway.storage.records import ToolCall
from gateway.web.authorize import app as authorize_app
from infra.placeholders import create_grant
from tests.unit.web.admin.conftest import BASE, WORKSPACE, browser

CONSOLE = f"/{WORKSPACE}/admin"
VIEWS = ["", "/clients", "/grants", "/issuances", "/audit", "/funnel?client_id=client-bob", "/keys",
         "/users?user_id=bob"]  # fmt: skip


def _csrf(page_html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page_html)
    assert found is not None
    return found.group(1)


def _assert_strict_headers(headers: dict[str, str] | object) -> None:
    assert isinstance(headers, dict) or hasattr(headers, "get")
    csp = headers.get("content-security-policy")
    assert csp is not None and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp  # no script at all
    assert headers.get("x-frame-options") == "DENY"
    assert headers.get("cache-control") == "no-store"


def test_a_signed_out_browser_is_sent_through_the_workspaces_sign_in_and_back(runtime: Runtime) -> None:
    # Given a browser with no session
    with browser(runtime, None) as console:
        answer = console.get(CONSOLE + "/grants")

    # Then the console sends it to the workspace's sign-in for the console (the authorize function's route)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{BASE}/{WORKSPACE}/admin/sign-in"

    # And the sign-in, at the authorize function, is the dev login's, and returns to the console with a session
    with TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False) as signing:
        start = signing.get(f"/{WORKSPACE}/admin/sign-in")
        assert start.status_code == 303 and "/login?p=" in start.headers["location"]
        form = signing.get(urlsplit(start.headers["location"]).path + "?" + urlsplit(start.headers["location"]).query)
        assert "administer this workspace" in form.text
        pending = re.search(r'name="p" value="([^"]+)"', form.text)
        assert pending is not None
        done = signing.post(
            f"/{WORKSPACE}/login",
            data={"p": pending.group(1), "csrf": _csrf(form.text), "username": "alice", "password": "alice-password"},
        )
        assert done.status_code == 303 and done.headers["location"] == f"{BASE}/{WORKSPACE}/admin"
        assert any(name.startswith("mcpgw-session") or "mcpgw-session" in name for name in done.cookies)
        # a browser already signed in goes straight back to the console
        again = signing.get(f"/{WORKSPACE}/admin/sign-in")
        assert again.status_code == 303 and again.headers["location"] == f"{BASE}/{WORKSPACE}/admin"


def test_someone_who_is_not_an_admin_gets_a_clear_403_page(runtime: Runtime) -> None:
    with browser(runtime, "bob") as bob:
        page = bob.get(CONSOLE)
    assert page.status_code == 403
    assert "Administrators only" in page.text and "is not an administrator" in page.text
    _assert_strict_headers(page.headers)


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_renders_for_an_admin_with_the_strict_headers(runtime: Runtime, view: str) -> None:
    route = runtime.routes.get(WORKSPACE, "echo")
    assert route is not None
    create_grant(runtime, route, subject="bob", client_id="client-bob")
    runtime.usage.record(ToolCall(WORKSPACE, route.key, "echo", "client-bob", "bob", runtime.now(), "ok", 4.0, 3.0))
    with browser(runtime, "alice") as alice:
        page = alice.get(CONSOLE + view)
    assert page.status_code == 200, page.text[:500]
    assert "Alice Example" in page.text and "<script" not in page.text
    _assert_strict_headers(page.headers)


def test_a_change_needs_the_sessions_csrf_token_and_a_foreign_form_changes_nothing(runtime: Runtime) -> None:
    # Given bob's grant and alice's console, where revoking asks first
    route = runtime.routes.get(WORKSPACE, "echo")
    assert route is not None
    grant_id = create_grant(runtime, route, subject="bob", client_id="client-bob")
    with browser(runtime, "alice") as alice:
        question = alice.get(CONSOLE + f"/confirm?action=revoke_grant&id={grant_id}")
        assert question.status_code == 200 and "Confirm" in question.text

        # When the form comes without the token, with another's, or from a browser without the session
        refused = [
            alice.post(CONSOLE + "/act", data={"action": "revoke_grant", "id": grant_id}),
            alice.post(CONSOLE + "/act", data={"action": "revoke_grant", "id": grant_id, "csrf": "forged"}),
        ]
        with browser(runtime, None) as elsewhere:
            refused.append(elsewhere.post(CONSOLE + "/act", data={"action": "revoke_grant", "id": grant_id}))

        # Then each is refused and the grant stands
        assert [answer.status_code for answer in refused] == [403, 403, 403]
        grant = runtime.grants.get_grant(grant_id)
        assert grant is not None and grant.status == "active"

        # And with the session's token, the confirmed form revokes it and says so
        done = alice.post(
            CONSOLE + "/act", data={"action": "revoke_grant", "id": grant_id, "csrf": _csrf(question.text)}
        )
    assert done.status_code == 200 and grant_id in done.text
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None and grant.status == "revoked" and grant.revoked_reason == "admin"


def test_an_api_key_made_in_the_console_is_shown_once_whole(runtime: Runtime) -> None:
    with browser(runtime, "alice") as alice:
        keys = alice.get(CONSOLE + "/keys")
        made = alice.post(
            CONSOLE + "/act",
            data={"action": "create_key", "csrf": _csrf(keys.text), "user_id": "bob", "name": "ci", "servers": "echo"},
        )
        listed = alice.get(CONSOLE + "/keys")
    value = re.search(r'id="key-value">(mcpgw_[^<]+)<', made.text)
    assert made.status_code == 200 and value is not None and len(value.group(1)) >= 60
    assert value.group(1) not in listed.text and "ci" in listed.text


def test_signing_out_ends_the_session(runtime: Runtime) -> None:
    with browser(runtime, "alice") as alice:
        page = alice.get(CONSOLE)
        out = alice.post(CONSOLE + "/sign-out", data={"csrf": _csrf(page.text)})
    assert out.status_code == 200 and "Signed out" in out.text
    assert "max-age=0" in out.headers["set-cookie"].lower()  # the browser forgets the session's cookie

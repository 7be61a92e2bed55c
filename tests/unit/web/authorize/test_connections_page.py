"""The end user's "My connections" page (``/{workspace}/connections``): signed in through the workspace's sign-in (or
already, by the sign-in of a consent in the same browser), it lists the applications the user authorized, the
upstream accounts they connected and the gateway API keys they own, and revokes or disconnects them after asking, then
says what it did; nobody else's. Forms carry a CSRF token bound to the session, which Sign out ends."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from gateway.api_keys.issuing import KeyRequest, create_key
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.authorize import app as authorize_app
from gateway.web.common.session import SESSION_SECONDS
from infra.memory.stores import MemoryAuditLog
from infra.placeholders import create_grant, ensure_local_client
from tests.support.manual_clock import ManualClock
from tests.support.runtime import memory_runtime
from tests.unit.upstream.fakes import token_set
from tests.unit.web.authorize.test_upstream_connect import (
    BASE,
    _config,
    assert_html_security_headers,
    local,
    sign_in,
    to_consent,
)

PAGE = "/demo/connections"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runtime(clock: ManualClock) -> Runtime:
    # the upstream authorization server is never called here: accounts are stored as a finished connect would
    return memory_runtime(parse_config(_config("http://127.0.0.1:9/as")), clock=clock)


def new_browser(runtime: Runtime) -> TestClient:
    return TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)


@pytest.fixture
def browser(runtime: Runtime) -> Iterator[TestClient]:
    with new_browser(runtime) as client:
        yield client


def signed_in(browser: TestClient, user: str) -> Any:
    started = browser.get(PAGE)
    assert started.status_code == 303
    done = sign_in(browser, started.headers["location"], user)
    assert done.status_code == 303 and local(done.headers["location"]).startswith("/demo/connections")
    page = browser.get(PAGE)
    assert page.status_code == 200, page.text
    return page


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def confirm_link(html: str, parameter: str, value: str) -> str:
    """The path of the list's link that asks before acting (``?revoke=<grant id>``...)."""
    match = re.search(rf'href="([^"]*\?{parameter}={re.escape(value)})"', html)
    assert match, f"no {parameter} link for {value}"
    return local(match.group(1).replace("&amp;", "&"))


def _grant(runtime: Runtime, user: str) -> str:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    ensure_local_client(runtime, route)
    return create_grant(runtime, route, subject=user)


def _events(runtime: Runtime) -> list[Any]:
    log = runtime.audit_log
    assert isinstance(log, MemoryAuditLog)
    return log.events("demo", since=0, until=runtime.now() + 1)


def test_the_page_asks_to_sign_in_for_what_it_is_then_lists_the_users_applications_and_accounts(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice authorized an application and connected her Notes account; bob authorized one too
    alice_grant, bob_grant = _grant(runtime, "alice"), _grant(runtime, "bob")
    runtime.upstream_oauth.vault.save("demo/notes", "alice", token_set())

    # When she opens the page, its sign-in says what it is for (not "…which asks to use Echo")
    started = browser.get(PAGE)
    login = browser.get(local(started.headers["location"]))
    assert "to see the applications and accounts connected to you in this workspace." in login.text
    assert "which asks to use" not in login.text and "Your connections" not in login.text
    page = signed_in(browser, "alice")

    # Then she sees her application and her account, never bob's, under her display name, with the consent page's
    # protections; dates do not break across lines; scopes read as on the consent page
    assert_html_security_headers(page)
    assert f"?revoke={alice_grant}" in page.text and bob_grant not in page.text
    assert "make invoke (local sample events)" in page.text  # the client's name
    assert "?disconnect=demo%2Fnotes" in page.text and "Disconnect" in page.text
    assert "Signed in as Alice Example" in page.text and "Signed in as alice" not in page.text
    assert re.search(r'since <span class="date">\d{4}-\d\d-\d\d \d\d:\d\d UTC</span>', page.text)
    assert "Use this MCP server on your behalf: list and call its tools" in page.text
    assert '<span class="mono">(mcp)</span>' in page.text


def test_right_after_signing_in_for_a_client_the_same_browser_opens_the_page_without_signing_in_again(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice signed in for an MCP client's consent in this browser
    to_consent(runtime, browser, "echo", "alice")
    _grant(runtime, "alice")

    # When she opens My connections in the same browser
    page = browser.get(PAGE)

    # Then the page is shown at once, as her
    assert page.status_code == 200, page.headers.get("location")
    assert "Signed in as Alice Example" in page.text

    # And another browser still has to sign in
    with new_browser(runtime) as other:
        assert other.get(PAGE).status_code == 303


def test_the_shared_sign_in_ends_with_its_lifetime(runtime: Runtime, browser: TestClient, clock: ManualClock) -> None:
    to_consent(runtime, browser, "echo", "alice")

    clock.now += SESSION_SECONDS + 1

    assert browser.get(PAGE).status_code == 303  # to the sign-in


def test_revoke_asks_first_then_acts_and_says_what_it_did(runtime: Runtime, browser: TestClient) -> None:
    grant_id = _grant(runtime, "alice")
    page = signed_in(browser, "alice")

    # When she clicks Revoke…, the page asks, naming the application and the server; nothing is revoked yet
    question = browser.get(confirm_link(page.text, "revoke", grant_id))
    assert question.status_code == 200
    assert "Revoke make invoke (local sample events)&#39;s access to Echo (demo)?" in question.text
    assert "its tokens stop working at its next request" in question.text
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None and grant.status == "active"

    # When she confirms
    done = browser.post(PAGE, data={"csrf": csrf_of(question.text), "revoke": grant_id})

    # Then the grant is revoked and audited, and the page reports it
    assert done.status_code == 303
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None and grant.status == "revoked"
    assert any(event.kind == "grant.revoked" for event in _events(runtime))
    after = browser.get(local(done.headers["location"]))
    assert "Revoked: make invoke (local sample events) can no longer use Echo (demo) as you." in after.text
    assert f"?revoke={grant_id}" not in after.text


def test_disconnect_asks_first_then_acts_and_says_what_it_did(runtime: Runtime, browser: TestClient) -> None:
    runtime.upstream_oauth.vault.save("demo/notes", "alice", token_set())
    page = signed_in(browser, "alice")

    question = browser.get(confirm_link(page.text, "disconnect", "demo%2Fnotes"))
    assert "Disconnect your account for Notes?" in question.text
    assert runtime.upstream_oauth.vault.is_connected("demo/notes", "alice")

    done = browser.post(PAGE, data={"csrf": csrf_of(question.text), "disconnect": "demo/notes"})

    assert done.status_code == 303
    assert not runtime.upstream_oauth.vault.is_connected("demo/notes", "alice")
    assert any(event.kind == "upstream.disconnected" for event in _events(runtime))
    after = browser.get(local(done.headers["location"]))
    assert "Disconnected: the gateway forgot your account for Notes." in after.text
    assert "No upstream account is connected" in after.text


def test_a_report_link_says_nothing_of_someone_elses_grant(runtime: Runtime, browser: TestClient) -> None:
    # A crafted ?revoked= link cannot make the page claim something: bob's grant is revoked, alice's is active
    bob_grant, alice_grant = _grant(runtime, "bob"), _grant(runtime, "alice")
    runtime.grants.revoke_grant(bob_grant, runtime.now(), "user")
    signed_in(browser, "alice")

    assert "Revoked" not in browser.get(f"{PAGE}?revoked={bob_grant}").text
    assert "Revoked" not in browser.get(f"{PAGE}?revoked={alice_grant}").text  # still active


def test_no_csrf_token_or_someone_elses_grant_is_refused(runtime: Runtime, browser: TestClient) -> None:
    bob_grant = _grant(runtime, "bob")
    page = signed_in(browser, "alice")

    assert browser.post(PAGE, data={"revoke": bob_grant}).status_code == 400
    assert browser.post(PAGE, data={"csrf": csrf_of(page.text), "revoke": bob_grant}).status_code == 404
    assert browser.get(f"{PAGE}?revoke={bob_grant}").status_code == 404  # no question about it either
    grant = runtime.grants.get_grant(bob_grant)
    assert grant is not None and grant.status == "active"


def test_without_a_session_a_post_is_refused_and_a_forged_cookie_is_ignored(browser: TestClient) -> None:
    browser.cookies.set("__Host-mcpgw-session-demo", "eyJ1IjoiYWxpY2UifQ.forged")
    assert browser.post(PAGE, data={"csrf": "x", "revoke": "g"}).status_code == 400
    assert browser.get(PAGE).status_code == 303  # back to sign-in


# --- the CSRF token and Sign out (issue 20 item 13) --------------------------------------------------------------


def test_the_csrf_token_is_bound_to_the_session_and_changes_at_each_sign_in(runtime: Runtime) -> None:
    # Given alice signed in twice, in two browsers
    grant_id = _grant(runtime, "alice")
    with new_browser(runtime) as first, new_browser(runtime) as second:
        first_token = csrf_of(signed_in(first, "alice").text)
        second_token = csrf_of(signed_in(second, "alice").text)

        # Then each session has its own token, and one session's token is refused in the other
        assert first_token != second_token
        assert second.post(PAGE, data={"csrf": first_token, "revoke": grant_id}).status_code == 400
        grant = runtime.grants.get_grant(grant_id)
        assert grant is not None and grant.status == "active"


def test_the_csrf_token_expires_with_the_session(runtime: Runtime, browser: TestClient, clock: ManualClock) -> None:
    grant_id = _grant(runtime, "alice")
    token = csrf_of(signed_in(browser, "alice").text)

    clock.now += SESSION_SECONDS + 1

    assert browser.post(PAGE, data={"csrf": token, "revoke": grant_id}).status_code == 400
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None and grant.status == "active"


def test_sign_out_ends_the_session_and_its_token(runtime: Runtime, browser: TestClient) -> None:
    grant_id = _grant(runtime, "alice")
    page = signed_in(browser, "alice")
    token = csrf_of(page.text)
    assert 'name="sign_out"' in page.text

    # When she signs out
    out = browser.post(PAGE, data={"csrf": token, "sign_out": "1"})

    # Then the browser forgets the session and sees a page saying so, not a new sign-in
    assert out.status_code == 303 and "mcpgw-session-demo=" in out.headers["set-cookie"]
    shown = browser.get(local(out.headers["location"]))
    assert shown.status_code == 200 and "You are signed out" in shown.text
    assert browser.get(PAGE).status_code == 303  # opening the page again signs in again

    # And after signing in again, the old token is refused
    signed_in(browser, "alice")
    assert browser.post(PAGE, data={"csrf": token, "revoke": grant_id}).status_code == 400
    assert urlsplit(out.headers["location"]).path == PAGE


# --- API keys ----------------------------------------------------------------------------------------------------


def _key(runtime: Runtime, user: str, name: str) -> str:
    request = KeyRequest(workspace="demo", user_id=user, name=name, servers=("echo",))
    key, _ = create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
    return key.key_id


def test_the_page_lists_the_users_own_keys_and_revokes_them_after_asking(runtime: Runtime, browser: TestClient) -> None:
    # Given alice owns a key, bob owns another
    alice_key, bob_key = _key(runtime, "alice", "alice's CI"), _key(runtime, "bob", "bob's agent")

    # When she opens the page
    page = signed_in(browser, "alice")

    # Then she sees her key (by name and id, never a value or hash), not bob's
    assert f"?revoke_key={alice_key}" in page.text and "alice&#39;s CI" in page.text
    assert bob_key not in page.text and "mcpgw_" not in page.text
    csrf = csrf_of(page.text)

    # When she posts without the CSRF token, or names bob's key, nothing happens
    assert browser.post(PAGE, data={"revoke_key": alice_key}).status_code == 400
    assert browser.post(PAGE, data={"csrf": csrf, "revoke_key": bob_key}).status_code == 404
    bobs = runtime.api_keys.get_key(bob_key)
    assert bobs is not None and bobs.status == "active"

    # When she revokes her own key, after the question
    question = browser.get(confirm_link(page.text, "revoke_key", alice_key))
    assert "Revoke the API key alice&#39;s CI?" in question.text
    revoked = browser.post(PAGE, data={"csrf": csrf_of(question.text), "revoke_key": alice_key})

    # Then it is revoked, audited as hers, reported, and gone from the list
    assert revoked.status_code == 303
    record = runtime.api_keys.get_key(alice_key)
    assert record is not None and record.status == "revoked"
    events = _events(runtime)
    assert any(e.kind == "key.revoked" and e.client_id == alice_key and e.detail["by"] == "user" for e in events)
    after = browser.get(local(revoked.headers["location"]))
    assert f"Revoked the API key alice&#39;s CI ({alice_key})" in after.text
    assert f"?revoke_key={alice_key}" not in after.text


def test_a_grant_made_by_an_id_jag_is_listed_and_says_how_it_was_obtained(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice's grant made by her organization's identity provider (an ID-JAG redeemed at /token)
    grant_id = _grant(runtime, "alice")
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None
    runtime.grants.revoke_grant(grant_id, runtime.now(), "replaced by its ID-JAG twin")
    runtime.grants.create_grant(dataclasses.replace(grant, grant_id=f"{grant_id}-idjag", obtained_by="id_jag"))

    # Then My connections lists it, says it came from the organization's identity provider, and offers Revoke
    page = signed_in(browser, "alice")
    assert f"?revoke={grant_id}-idjag" in page.text
    assert "granted by your organization&#39;s identity provider" in page.text

"""The end user's "My connections" page (``/{workspace}/connections``): signed in through the workspace's sign-in, it
lists the applications the user authorized and the upstream accounts they connected, and revokes or disconnects
them, and the gateway API keys they own, which they revoke (CSRF-protected, the consent page's security headers);
nobody else's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api_keys.issuing import KeyRequest, create_key
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.storage.memory import MemoryAuditLog
from gateway.web import authorize_app
from infra.placeholders import create_grant, ensure_local_client
from tests.support.runtime import memory_runtime
from tests.unit.upstream.fakes import token_set
from tests.unit.web.test_upstream_connect import BASE, _config, assert_html_security_headers, local, sign_in

PAGE = "/demo/connections"


@pytest.fixture
def runtime() -> Runtime:
    # the upstream authorization server is never called here: accounts are stored as a finished connect would
    return memory_runtime(parse_config(_config("http://127.0.0.1:9/as")))


@pytest.fixture
def browser(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False) as client:
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


def _grant(runtime: Runtime, user: str) -> str:
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    ensure_local_client(runtime, route)
    return create_grant(runtime, route, subject=user)


def test_the_page_asks_to_sign_in_then_lists_the_users_applications_and_accounts(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice authorized an application and connected her Notes account; bob authorized one too
    alice_grant, bob_grant = _grant(runtime, "alice"), _grant(runtime, "bob")
    runtime.upstream_oauth.vault.save("demo/notes", "alice", token_set())

    # When she opens the page (signing in first)
    page = signed_in(browser, "alice")

    # Then she sees her application and her account, never bob's, on a page with the consent page's protections
    assert_html_security_headers(page)
    assert f'value="{alice_grant}"' in page.text and bob_grant not in page.text
    assert "make invoke" in page.text  # the client's name
    assert 'value="demo/notes"' in page.text and "Disconnect" in page.text


def test_revoke_and_disconnect_act_on_the_users_own_and_are_audited(runtime: Runtime, browser: TestClient) -> None:
    grant_id = _grant(runtime, "alice")
    runtime.upstream_oauth.vault.save("demo/notes", "alice", token_set())
    page = signed_in(browser, "alice")
    csrf = csrf_of(page.text)

    revoked = browser.post(PAGE, data={"csrf": csrf, "revoke": grant_id})
    disconnected = browser.post(PAGE, data={"csrf": csrf, "disconnect": "demo/notes"})

    assert revoked.status_code == disconnected.status_code == 303
    grant = runtime.grants.get_grant(grant_id)
    assert grant is not None and grant.status == "revoked"
    assert not runtime.upstream_oauth.vault.is_connected("demo/notes", "alice")
    after = browser.get(PAGE)
    assert grant_id not in after.text and "No upstream account is connected" in after.text
    log = runtime.audit_log
    assert isinstance(log, MemoryAuditLog)
    kinds = [event.kind for event in log.events("demo", since=0, until=runtime.now() + 1)]
    assert "grant.revoked" in kinds and "upstream.disconnected" in kinds


def test_no_csrf_token_or_someone_elses_grant_is_refused(runtime: Runtime, browser: TestClient) -> None:
    bob_grant = _grant(runtime, "bob")
    _grant(runtime, "alice")  # so that her page has a form (and its CSRF token)
    page = signed_in(browser, "alice")

    assert browser.post(PAGE, data={"revoke": bob_grant}).status_code == 400
    assert browser.post(PAGE, data={"csrf": csrf_of(page.text), "revoke": bob_grant}).status_code == 404
    grant = runtime.grants.get_grant(bob_grant)
    assert grant is not None and grant.status == "active"


def test_without_a_session_a_post_is_refused_and_a_forged_cookie_is_ignored(browser: TestClient) -> None:
    browser.cookies.set("__Host-mcpgw-connections-demo", "alice|9999999999.forged")
    assert browser.post(PAGE, data={"csrf": "x", "revoke": "g"}).status_code == 400
    assert browser.get(PAGE).status_code == 303  # back to sign-in


def _key(runtime: Runtime, user: str, name: str) -> str:
    request = KeyRequest(workspace="demo", user_id=user, name=name, servers=("echo",))
    key, _ = create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
    return key.key_id


def test_the_page_lists_the_users_own_keys_and_revokes_them_with_a_csrf_token(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice owns a key, bob owns another
    alice_key, bob_key = _key(runtime, "alice", "alice's CI"), _key(runtime, "bob", "bob's agent")

    # When she opens the page
    page = signed_in(browser, "alice")

    # Then she sees her key (by name and id, never a value or hash), not bob's
    assert f'name="revoke_key" value="{alice_key}"' in page.text and "alice&#39;s CI" in page.text
    assert bob_key not in page.text and "mcpgw_" not in page.text
    csrf = csrf_of(page.text)

    # When she posts without the CSRF token, or names bob's key, nothing happens
    assert browser.post(PAGE, data={"revoke_key": alice_key}).status_code == 400
    assert browser.post(PAGE, data={"csrf": csrf, "revoke_key": bob_key}).status_code == 404
    bobs = runtime.api_keys.get_key(bob_key)
    assert bobs is not None and bobs.status == "active"

    # When she revokes her own key
    revoked = browser.post(PAGE, data={"csrf": csrf, "revoke_key": alice_key})

    # Then it is revoked, audited as hers, and gone from the page
    assert revoked.status_code == 303
    record = runtime.api_keys.get_key(alice_key)
    assert record is not None and record.status == "revoked"
    log = runtime.audit_log
    assert isinstance(log, MemoryAuditLog)
    events = log.events("demo", since=0, until=runtime.now() + 1)
    assert any(e.kind == "key.revoked" and e.client_id == alice_key and e.detail["by"] == "user" for e in events)
    assert alice_key not in browser.get(PAGE).text

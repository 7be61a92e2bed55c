"""Connecting an upstream account in the browser (``/{ws}/{server}/connect`` and ``/{ws}/{server}/connect/callback``).

The gateway runs in-process (starlette TestClient, in-memory stores, a local AES-GCM token cipher); the upstream's
authorization server is a small real HTTP server on 127.0.0.1 that publishes RFC 8414 metadata, approves (or
refuses) every authorization request by redirecting straight back, and checks PKCE, ``resource`` and the redirect
URI at its token endpoint. The browser's redirects to that server are followed with httpx, so every hop is real.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from gateway.config import parse_config
from gateway.crypto.pkce import s256
from gateway.runtime import Runtime
from gateway.storage.records import RegisteredClient
from gateway.upstream.client_metadata import connect_callback_url
from gateway.upstream.connect_links import LINK_SECONDS, connect_url, link_token
from gateway.web.authorize import app as authorize_app
from gateway.web.authorize.sign_in_flow import CONNECT_CLIENT_ID
from infra.memory.stores import MemoryGrantStore, MemoryUpstreamTokenStore
from tests.support.runtime import example_config_data, memory_runtime

BASE = "https://gw.example.com"
NOTES = "demo/notes"  # per-user upstream OAuth
TEAM = "demo/team"  # a shared account, connected by an admin (alice; bob is not one)
CALLBACK = f"{BASE}/demo/notes/connect/callback"
GATEWAY_CLIENT = "gateway-at-upstream"
MCP_CLIENT = "mcp-client-1"
MCP_REDIRECT = "http://127.0.0.1:33418/callback"


# --- the upstream's authorization server (real HTTP on 127.0.0.1) ---------------------------------------------


@dataclass
class UpstreamAS:
    issuer: str = ""
    answer_error: str | None = None  # e.g. "access_denied": the user cancels at the upstream
    token_error: str | None = None  # e.g. "invalid_client": the token endpoint refuses every code
    challenges: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, redirect_uri)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.answer_error = None
        self.token_error = None
        self.challenges.clear()
        self.token_requests.clear()
        self.issued.clear()


def _handler(state: UpstreamAS) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/.well-known/oauth-authorization-server":
                self._json(
                    200,
                    {
                        "issuer": state.issuer,
                        "authorization_endpoint": f"{state.issuer}/authorize",
                        "token_endpoint": f"{state.issuer}/token",
                        "code_challenge_methods_supported": ["S256"],
                        "response_types_supported": ["code"],
                        "token_endpoint_auth_methods_supported": ["none"],
                        "authorization_response_iss_parameter_supported": True,
                    },
                )
            elif url.path == "/authorize":
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                answer = {"state": query["state"], "iss": state.issuer}
                if state.answer_error:
                    answer["error"] = state.answer_error
                else:
                    code = secrets.token_urlsafe(16)
                    state.challenges[code] = (query["code_challenge"], query["redirect_uri"])
                    answer["code"] = code
                self.send_response(302)
                separator = "&" if "?" in query["redirect_uri"] else "?"  # RFC 6749 §3.1.2: its query is kept
                self.send_header("Location", f"{query['redirect_uri']}{separator}{urlencode(answer)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {key: values[0] for key, values in parse_qs(self.rfile.read(length).decode()).items()}
            state.token_requests.append(form)
            expected = state.challenges.pop(form.get("code", ""), None)
            if (
                self.path != "/token"
                or expected is None
                or s256(form.get("code_verifier", "")) != expected[0]
                or form.get("redirect_uri") != expected[1]
                or form.get("client_id") != GATEWAY_CLIENT
            ):
                self._json(400, {"error": "invalid_grant"})
                return
            if state.token_error is not None:
                self._json(400, {"error": state.token_error})
                return
            access = f"upstream-access-{secrets.token_hex(8)}"
            state.issued.append(access)
            self._json(
                200,
                {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": "upstream-rt"},
            )

    return Handler


@pytest.fixture(scope="module")
def upstream_as() -> Iterator[UpstreamAS]:
    state = UpstreamAS()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.issuer = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- the gateway ---------------------------------------------------------------------------------------------


def _config(issuer: str) -> dict[str, Any]:
    data = example_config_data()  # workspace demo: dev users alice (admin) and bob
    # The upstream's authorization server runs on 127.0.0.1 over http: the local-stage development switch.
    data["oauth"] = {"cimd_allow_private_addresses": True}
    oauth = {"type": "oauth", "authorization_server": issuer, "registration": "preregistered"}
    servers = data["workspaces"]["demo"]["servers"]
    servers["notes"] = {
        "title": "Notes",
        "upstream": "http://127.0.0.1:9/notes/mcp",  # never called: the authorization server is configured
        "auth": {**oauth, "client_id": GATEWAY_CLIENT},
    }
    servers["team"] = {
        "title": "Team",
        "upstream": "http://127.0.0.1:9/team/mcp",
        "auth": {**oauth, "client_id": GATEWAY_CLIENT, "mode": "shared"},
    }
    servers["toolbox"] = {  # a virtual route: two upstreams with per-user OAuth, one without credentials
        "title": "Toolbox",
        "upstreams": {
            "notes": {"url": "http://127.0.0.1:9/notes/mcp", "auth": {**oauth, "client_id": GATEWAY_CLIENT}},
            "wiki": {"url": "http://127.0.0.1:9/wiki/mcp", "auth": {**oauth, "client_id": GATEWAY_CLIENT}},
            "plain": {"url": "http://127.0.0.1:9/plain/mcp"},
        },
    }
    return data


@pytest.fixture
def runtime(upstream_as: UpstreamAS) -> Runtime:
    upstream_as.reset()
    runtime = memory_runtime(parse_config(_config(upstream_as.issuer)))
    # The real upstream-OAuth services (SSRF-safe fetcher allowed onto 127.0.0.1 by the config's development
    # switch), with the KMS envelope cipher replaced by an in-memory one (memory_runtime's).
    return runtime


@pytest.fixture
def browser(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False) as client:
        yield client


def tokens_of(runtime: Runtime) -> MemoryUpstreamTokenStore:
    store = runtime.upstream_tokens
    assert isinstance(store, MemoryUpstreamTokenStore)
    return store


def grants(runtime: Runtime) -> MemoryGrantStore:
    store = runtime.grants
    assert isinstance(store, MemoryGrantStore)
    return store


def stored_subjects(runtime: Runtime) -> list[tuple[str, str]]:
    return sorted(tokens_of(runtime)._items)


def route(runtime: Runtime, key: str) -> Any:
    found = runtime.routes.by_key(key)
    assert found is not None
    return found


def link(runtime: Runtime, key: str, subject: str, *, now: int | None = None) -> str:
    return link_token(route(runtime, key), subject, runtime.shared_secret, now or runtime.now())


def local(location: str) -> str:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == BASE, location
    return f"{parts.path}?{parts.query}"


def assert_html_security_headers(response: Any) -> None:
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def sign_in(browser: TestClient, login_location: str, username: str) -> Any:
    """The dev login form at ``login_location``, submitted as ``username``."""
    login_path = local(login_location)
    assert login_path.startswith("/demo/login?p=")
    form_page = browser.get(login_path)
    assert form_page.status_code == 200, form_page.text
    pending_id = parse_qs(urlsplit(login_path).query)["p"][0]
    form = {"p": pending_id, "csrf": csrf_of(form_page.text), "username": username, "password": f"{username}-password"}
    return browser.post("/demo/login", data=form)


def open_link_signed_in(browser: TestClient, path: str, username: str) -> Any:
    opened = browser.get(path)
    assert opened.status_code == 303, opened.text
    return sign_in(browser, opened.headers["location"], username)


def continue_url(html: str) -> str:
    match = re.search(r'href="([^"]+)">Continue<', html)
    assert match, html
    return local(match.group(1).replace("&amp;", "&"))


def through_upstream(browser: TestClient, started: Any) -> str:
    """Follow the gateway's redirect to the upstream's authorization endpoint; return where it sends the browser."""
    assert started.status_code == 303, started.text
    authorization = started.headers["location"]
    answer = httpx.get(authorization, follow_redirects=False, trust_env=False)
    assert answer.status_code == 302
    return local(answer.headers["location"])


# --- connect links ---------------------------------------------------------------------------------------------


def test_a_connect_link_opened_without_being_signed_in_starts_the_workspace_sign_in(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice's connect link (as a -32042 error carries it), opened in a fresh browser
    url = connect_url(route(runtime, NOTES), "alice", runtime.shared_secret, runtime.now())
    assert url.startswith(f"{BASE}/demo/notes/connect?for=")

    # When the browser opens it
    response = browser.get(local(url))

    # Then it is sent to the workspace's sign-in, bound to this browser by a cookie; nothing is connected yet
    assert response.status_code == 303
    login = local(response.headers["location"])
    assert login.startswith("/demo/login?p=")
    assert "__Host-mcpgw-p-" in response.headers["set-cookie"]
    pending = grants(runtime).get_pending(parse_qs(urlsplit(login).query)["p"][0], runtime.now())
    assert pending is not None and pending.client_id == CONNECT_CLIENT_ID and pending.user_id is None
    form_page = browser.get(login)
    assert form_page.status_code == 200 and "to connect your account for Notes." in form_page.text
    assert "which asks to use" not in form_page.text  # the page says what this sign-in is for
    assert stored_subjects(runtime) == []


def test_alices_link_completed_by_bob_is_refused_and_stores_nothing(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice's connect link, opened by bob, who signs in as himself
    response = open_link_signed_in(browser, f"/demo/notes/connect?for={link(runtime, NOTES, 'alice')}", "bob")

    # Then he is refused with a page saying the link is someone else's, and no credential is stored
    assert response.status_code == 403
    assert "This link is for someone else" in response.text and "Bob Example" in response.text
    assert_html_security_headers(response)
    assert stored_subjects(runtime) == []
    assert upstream_as.token_requests == []
    assert grants(runtime)._pending == {}  # the connect sign-in is over


@pytest.mark.parametrize("kind", ["tampered", "expired", "other route", "garbage"])
def test_a_tampered_or_expired_link_is_refused_with_a_clear_page(
    runtime: Runtime, browser: TestClient, kind: str
) -> None:
    # Given a link that this deployment did not make for this route and subject, or that has expired
    token = link(runtime, NOTES, "alice")
    if kind == "tampered":  # bob's name with alice's signature
        version, _subject, expires, mac = token.split(".")
        token = ".".join([version, base64.urlsafe_b64encode(b"bob").decode().rstrip("="), expires, mac])
    elif kind == "expired":
        token = link(runtime, NOTES, "alice", now=runtime.now() - LINK_SECONDS - 60)
    elif kind == "other route":
        token = link(runtime, TEAM, "alice")
    else:
        token = "v1.not-a-link"

    # When the browser opens it
    response = browser.get(f"/demo/notes/connect?{urlencode({'for': token})}")

    # Then a 400 page explains the link is not valid any more and how to get a new one; no sign-in is started
    assert response.status_code == 400
    assert "Link expired or invalid" in response.text
    assert "Call the tool again in your application for a new link" in response.text
    assert_html_security_headers(response)
    assert "set-cookie" not in response.headers
    assert grants(runtime)._pending == {}


def test_a_connect_address_without_a_link_is_refused_on_a_per_user_route(browser: TestClient) -> None:
    response = browser.get("/demo/notes/connect")

    assert response.status_code == 400 and "Use the link you were given" in response.text
    assert_html_security_headers(response)


def test_a_route_without_upstream_oauth_has_nothing_to_connect(runtime: Runtime, browser: TestClient) -> None:
    # Given the demo route `echo`, whose upstream needs no credential, and a well-formed link for it
    response = browser.get(f"/demo/echo/connect?for={link(runtime, 'demo/echo', 'alice')}")

    # Then the answer is a clear 404 page
    assert response.status_code == 404 and "There is no upstream account to connect" in response.text
    assert_html_security_headers(response)


# --- the whole reconnect flow and its callback ----------------------------------------------------------------


def reconnect_until_upstream(runtime: Runtime, browser: TestClient, username: str = "alice") -> str:
    """Alice opens her link, signs in, presses Continue: the callback path the upstream sends the browser to."""
    signed_in = open_link_signed_in(browser, f"/demo/notes/connect?for={link(runtime, NOTES, 'alice')}", username)
    assert signed_in.status_code == 200, signed_in.text
    assert_html_security_headers(signed_in)
    assert "127.0.0.1" in signed_in.text  # names where the user will sign in
    return through_upstream(browser, browser.get(continue_url(signed_in.text)))


def test_a_successful_reconnect_stores_the_encrypted_token_for_the_user_and_shows_connected(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice signed in through her link and approved at the upstream
    callback = reconnect_until_upstream(runtime, browser)
    assert callback.startswith("/demo/notes/connect/callback?")

    # When the upstream sends her browser back with a code
    response = browser.get(callback)

    # Then the page says connected, the flow cookie is cleared, and the token set is stored for (demo/notes, alice)
    assert response.status_code == 200, response.text
    assert "<h1>Connected</h1>" in response.text and "Your account for <strong>Notes</strong>" in response.text
    assert_html_security_headers(response)
    assert "mcpgw-u-" in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
    assert stored_subjects(runtime) == [(NOTES, "alice")]
    (issued,) = upstream_as.issued
    row = tokens_of(runtime).get(NOTES, "alice")
    assert row is not None and issued.encode() not in row.ciphertext  # encrypted at rest
    vault = runtime.upstream_oauth.vault
    assert asyncio.run(vault.current(NOTES, "alice")).access_token == issued
    # the code exchange carried PKCE, the callback URL and the upstream as the resource (RFC 8707)
    (exchange,) = upstream_as.token_requests
    assert exchange["redirect_uri"] == CALLBACK and exchange["resource"] == "http://127.0.0.1:9/notes/mcp"
    assert grants(runtime)._pending == {}  # the connect sign-in is finished


def test_the_callback_with_a_forged_or_missing_state_is_refused_and_stores_nothing(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given a connection in progress, with the upstream's real code in hand
    callback = reconnect_until_upstream(runtime, browser)
    code = parse_qs(urlsplit(callback).query)["code"][0]

    for query in ({"state": "forged", "code": code}, {"code": code}, {"state": "", "code": code}):
        # When the callback arrives with a state this browser did not start
        response = browser.get(f"/demo/notes/connect/callback?{urlencode(query)}")

        # Then it is refused with a page, the code is never redeemed, and nothing is stored
        assert response.status_code == 400, query
        assert "Connection not recognised" in response.text
        assert_html_security_headers(response)
    assert upstream_as.token_requests == [] and stored_subjects(runtime) == []


def test_the_callback_in_another_browser_is_refused(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice's real callback URL (state and code), replayed by a browser without her flow cookie
    callback = reconnect_until_upstream(runtime, browser)
    with TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False) as other:
        response = other.get(callback)

    # Then it is refused and nothing is stored
    assert response.status_code == 400 and "started in another browser" in response.text
    assert upstream_as.token_requests == [] and stored_subjects(runtime) == []


def test_an_upstream_error_at_the_callback_shows_a_clear_page(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice cancels at the upstream's authorization server
    upstream_as.answer_error = "access_denied"
    callback = reconnect_until_upstream(runtime, browser)
    assert "error=access_denied" in callback

    # When her browser comes back
    response = browser.get(callback)

    # Then a page says the account was not connected and why; nothing is stored
    assert response.status_code == 400
    assert "The account was not connected" in response.text and "access_denied" in response.text
    assert_html_security_headers(response)
    assert stored_subjects(runtime) == [] and upstream_as.token_requests == []


# --- from the consent page -------------------------------------------------------------------------------------


def _register_mcp_client(runtime: Runtime, route_key: str) -> None:
    now = runtime.now()
    runtime.clients.create(
        RegisteredClient(
            client_id=MCP_CLIENT,
            route_key=route_key,
            client_name="Test MCP client",
            redirect_uris=(MCP_REDIRECT,),
            token_endpoint_auth_method="none",
            client_secret_hash=None,
            created_at=now,
            last_used_at=now,
            expires_at=None,
        )
    )


def to_consent(runtime: Runtime, browser: TestClient, server: str, username: str) -> str:
    """An MCP client's /authorize on ``server``, signed in as ``username``: the consent page's path."""
    _register_mcp_client(runtime, f"demo/{server}")
    verifier = "v" * 64
    query = {
        "response_type": "code",
        "client_id": MCP_CLIENT,
        "redirect_uri": MCP_REDIRECT,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "state": "client-state",
        "resource": f"{BASE}/demo/{server}/mcp",
    }
    started = browser.get(f"/demo/{server}/authorize?{urlencode(query)}")
    assert started.status_code == 303, started.text
    signed_in = sign_in(browser, started.headers["location"], username)
    assert signed_in.status_code == 303, signed_in.text
    consent = local(signed_in.headers["location"])
    assert consent.startswith(f"/demo/{server}/consent?p=")
    return consent


def connect_link_on(html: str) -> str:
    match = re.search(r'href="([^"]+)">Connect<', html)
    assert match, html
    return local(match.group(1).replace("&amp;", "&"))


def test_connecting_from_the_consent_page_stores_the_token_and_returns_to_consent(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice on the consent page of an MCP client for Notes: her account must be connected first
    consent = to_consent(runtime, browser, "notes", "alice")
    before = browser.get(consent)
    assert before.status_code == 200 and "Accounts to connect" in before.text
    assert re.search(r'value="approve"\s+disabled', before.text)

    # When she presses Connect and approves at the upstream
    callback = through_upstream(browser, browser.get(connect_link_on(before.text)))
    response = browser.get(callback)

    # Then her browser returns to the same consent page, where Approve is now enabled
    assert response.status_code == 303
    assert local(response.headers["location"]) == consent
    assert stored_subjects(runtime) == [(NOTES, "alice")]
    after = browser.get(consent)
    assert after.status_code == 200 and "Accounts to connect" not in after.text
    assert not re.search(r'value="approve"\s+disabled', after.text)
    assert_html_security_headers(after)


@pytest.mark.parametrize(
    ("answer_error", "token_error", "words", "audited"),
    [
        ("access_denied", None, "Access was not allowed at 127.0.0.1:9, so Notes is not connected.", "access_denied"),
        (None, "invalid_grant", "127.0.0.1:9 did not give the gateway a credential", "invalid_grant"),
    ],
)
def test_a_failed_connect_from_the_consent_page_says_why_there_and_is_audited(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS, answer_error: str | None,
    token_error: str | None, words: str, audited: str,
) -> None:  # fmt: skip
    # Given alice on the consent page, and an upstream that refuses her (she cancels, or its token endpoint refuses)
    consent = to_consent(runtime, browser, "notes", "alice")
    before = browser.get(consent)
    upstream_as.answer_error, upstream_as.token_error = answer_error, token_error

    # When she presses Connect and her browser comes back from the upstream
    response = browser.get(through_upstream(browser, browser.get(connect_link_on(before.text))))

    # Then she is back on the consent page, which says why in words she can act on, and still offers Connect
    assert response.status_code == 303 and local(response.headers["location"]).startswith(consent)
    page = browser.get(local(response.headers["location"]))
    assert page.status_code == 200 and words in page.text and "Connect again" in page.text
    assert connect_link_on(page.text) and stored_subjects(runtime) == []
    # And the failure is in the audit trail, for the administrator the page points to
    failures = [
        event for event in runtime.audit_log.events("demo", since=0, until=2**40) if event.kind == "upstream.failed"
    ]
    assert [(event.user_id, event.detail.get("error"), event.detail.get("stage")) for event in failures] == [
        ("alice", audited, "connect")
    ]
    # And the plain consent page (no failure reported) says nothing of it
    assert words not in browser.get(consent).text


# --- the shared account ----------------------------------------------------------------------------------------


def test_the_shared_account_connect_is_refused_for_a_non_admin(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given the shared account's connect URL (no link needed), opened by bob, who is not a workspace admin
    response = open_link_signed_in(browser, "/demo/team/connect", "bob")

    # Then he is refused and nothing is stored
    assert response.status_code == 403 and "Only an admin can connect this account" in response.text
    assert_html_security_headers(response)
    assert stored_subjects(runtime) == [] and upstream_as.token_requests == []


def test_a_non_admin_cannot_connect_the_shared_account_from_his_consent_page(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given bob on the consent page of the shared route (nothing to connect is listed for him)
    consent = to_consent(runtime, browser, "team", "bob")
    page = browser.get(consent)
    assert page.status_code == 200 and "Accounts to connect" not in page.text
    pending_id = parse_qs(urlsplit(consent).query)["p"][0]

    # When he crafts the Connect address himself
    response = browser.get(f"/demo/team/connect?{urlencode({'p': pending_id, 'csrf': csrf_of(page.text)})}")

    # Then he is refused
    assert response.status_code == 403 and "You cannot connect the account for Team" in response.text
    assert stored_subjects(runtime) == []


def test_an_admin_connects_the_shared_account(runtime: Runtime, browser: TestClient) -> None:
    # Given alice, an admin, opens the shared account's connect URL and signs in
    signed_in = open_link_signed_in(browser, "/demo/team/connect", "alice")
    assert signed_in.status_code == 200 and "Connect the shared account for" in signed_in.text

    # When she continues and approves at the upstream
    response = browser.get(through_upstream(browser, browser.get(continue_url(signed_in.text))))

    # Then the shared account is stored under the route's shared subject, not under alice
    assert response.status_code == 200 and "The shared account for <strong>Team</strong> is connected" in response.text
    assert stored_subjects(runtime) == [(TEAM, "shared")]


def test_the_continue_link_needs_the_csrf_token_of_the_sign_in(runtime: Runtime, browser: TestClient) -> None:
    # Given alice signed in through her link, holding the Continue URL
    signed_in = open_link_signed_in(browser, f"/demo/notes/connect?for={link(runtime, NOTES, 'alice')}", "alice")
    url = continue_url(signed_in.text)
    forged = re.sub(r"csrf=[^&]+", "csrf=forged", url)

    # When a page elsewhere makes her browser open it with another CSRF token
    response = browser.get(forged)

    # Then it is refused and no upstream flow starts
    assert response.status_code == 400 and "CSRF check failed" in response.text
    assert "set-cookie" not in response.headers


# --- a virtual route's upstreams --------------------------------------------------------------------------------


def test_the_consent_page_of_a_virtual_route_lists_each_upstream_to_connect_with_its_own_link(
    runtime: Runtime, browser: TestClient
) -> None:
    # Given alice on the consent page of a virtual route with two upstreams that need her own account
    consent = to_consent(runtime, browser, "toolbox", "alice")
    before = browser.get(consent)
    links = re.findall(r'href="([^"]+)">Connect<', before.text)
    assert len(links) == 2
    assert ["upstream=notes" in links[0], "upstream=wiki" in links[1]] == [True, True]

    # When she connects the first, she comes back to the consent page, which still asks for the second
    callback = through_upstream(browser, browser.get(local(links[0].replace("&amp;", "&"))))
    assert local(browser.get(callback).headers["location"]) == consent
    assert stored_subjects(runtime) == [("demo/toolbox/notes", "alice")]
    middle = browser.get(consent)
    assert re.search(r'value="approve"\s+disabled', middle.text)
    assert len(re.findall(r">Connect<", middle.text)) == 1

    # And once both are connected, Approve is enabled
    callback = through_upstream(browser, browser.get(connect_link_on(middle.text)))
    assert local(browser.get(callback).headers["location"]) == consent
    assert stored_subjects(runtime) == [("demo/toolbox/notes", "alice"), ("demo/toolbox/wiki", "alice")]
    after = browser.get(consent)
    assert "Accounts to connect" not in after.text
    assert not re.search(r'value="approve"\s+disabled', after.text)


def test_a_connect_link_for_one_upstream_of_a_virtual_route_stores_only_its_credential(
    runtime: Runtime, browser: TestClient
) -> None:
    member = route(runtime, "demo/toolbox/wiki")
    url = connect_url(member, "bob", runtime.shared_secret, runtime.now())
    assert "upstream=wiki" in url
    started = open_link_signed_in(browser, local(url), "bob")
    assert started.status_code == 200, started.text
    callback = through_upstream(browser, browser.get(continue_url(started.text)))
    done = browser.get(callback)
    assert done.status_code == 200 and "Connected" in done.text
    assert stored_subjects(runtime) == [("demo/toolbox/wiki", "bob")]
    # the link is bound to its upstream: presented for another one of the same route, it is refused
    other = browser.get(local(url).replace("upstream=wiki", "upstream=notes"))
    assert other.status_code == 400


def test_signed_out_connect_addresses_are_limited_per_address_before_they_store_anything(
    upstream_as: UpstreamAS,
) -> None:
    # Given a limit of 2 sign-in starts a minute per address
    runtime = memory_runtime(parse_config(_config(upstream_as.issuer)), rate_limit_authorize_per_ip=2)
    browser = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    # When one address opens the shared account's connect address (no link needed) and a valid connect link, twice each
    shared = [browser.get("/demo/team/connect") for _ in range(2)]
    links = [browser.get(f"/demo/notes/connect?{urlencode({'for': link(runtime, NOTES, 'alice')})}") for _ in range(2)]
    # Then the first two start a sign-in, the others are refused with 429, and only two pending rows were written
    assert [r.status_code for r in shared + links] == [303, 303, 429, 429]
    assert links[0].headers["retry-after"]
    assert len(grants(runtime)._pending) == 2


def test_each_upstream_has_its_own_callback_and_an_answer_at_another_ones_is_refused(
    runtime: Runtime, browser: TestClient, upstream_as: UpstreamAS
) -> None:
    # Given alice's flow for demo/notes, which the upstream answers at the callback of demo/notes
    callback = reconnect_until_upstream(runtime, browser)
    assert callback.startswith("/demo/notes/connect/callback?")
    # (the other upstreams of the workspace each have their own: a virtual route's by ?upstream=)
    member = route(runtime, "demo/toolbox/wiki")
    assert connect_callback_url(member) == f"{BASE}/demo/toolbox/connect/callback?upstream=wiki"
    assert connect_callback_url(route(runtime, TEAM)) == f"{BASE}/demo/team/connect/callback"

    # When the same answer (state and code) is delivered at the callback of another upstream (RFC 9700 §4.4 mix-up:
    # an authorization server sent the browser to the redirect URI it knows)
    elsewhere = "/demo/toolbox/connect/callback?upstream=wiki&" + urlsplit(callback).query
    response = browser.get(elsewhere)

    # Then it is refused: the code never reaches a token endpoint and nothing is stored
    assert response.status_code == 400 and "another upstream service" in response.text
    assert upstream_as.token_requests == [] and stored_subjects(runtime) == []

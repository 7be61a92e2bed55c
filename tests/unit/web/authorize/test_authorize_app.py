"""The authorize function over HTTP: dev login, access policy, consent, codes, headers and cookies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from gateway.config import DevLoginProvider, DevUser, parse_config
from gateway.crypto.hashing import hash_secret
from gateway.crypto.pkce import s256
from gateway.identity.user import SignedInUser
from gateway.oauth.authorization import new_code, new_grant
from gateway.oauth.errors import OAuthError
from gateway.routes import Route
from gateway.runtime import Runtime
from gateway.storage.records import ClientSource, Consent
from gateway.web.authorize import app as authorize_app
from infra.memory.stores import MemoryGrantStore
from tests.support.runtime import example_config_data, memory_runtime

BASE = "https://gw.example.com"
REDIRECT = "http://127.0.0.1:33418/callback"
VERIFIER = "v" * 64


@dataclass(frozen=True)
class FakeClient:
    client_id: str
    client_name: str = "Claude Code (test)"
    source: ClientSource = "dcr"
    redirect_uris: tuple[str, ...] = (REDIRECT,)
    client_uri: str | None = None
    logo_uri: str | None = None


class FakeLookup:
    clients = {
        "client-1": FakeClient("client-1"),
        "web-client": FakeClient("web-client", "Web Client", redirect_uris=("https://unknown.example.net/cb",)),
        "admin-client": FakeClient("admin-client", "Pre-registered", "preregistered"),
        "edge-client": FakeClient("edge-client", "Edge", redirect_uris=("microsoft-edge:https://evil.example/cb",)),
        "safari-client": FakeClient("safari-client", "Safari", redirect_uris=("x-safari-https://evil.example/cb",)),
        "cursor-client": FakeClient("cursor-client", "Cursor", redirect_uris=("cursor://anysphere.cursor-mcp/cb",)),
        "logo-client": FakeClient("logo-client", "Logo", logo_uri="https://tracker.example/pixel.png"),
        "evil": FakeClient("evil", "Totally Legit", redirect_uris=("https://evil.example/cb",)),
        "bidi-client": FakeClient("bidi-client", "Evil\u202eedoC edualC\u200b\u2066x\u2069"),
    }

    async def resolve(self, route: Route, client_id: str, now: int) -> FakeClient:
        try:
            return self.clients[client_id]
        except KeyError:
            raise OAuthError("invalid_client", f"unknown client_id {client_id!r}") from None


def runtime_with(access: dict[str, Any] | None = None, **settings: Any) -> Runtime:
    data = example_config_data()
    if access is not None:
        data["workspaces"]["demo"]["servers"]["echo"]["access"] = access
    runtime = memory_runtime(parse_config(data), **settings)
    runtime.__dict__["client_resolver"] = FakeLookup()
    return runtime


@pytest.fixture
def runtime() -> Runtime:
    return runtime_with()


@pytest.fixture
def browser(runtime: Runtime) -> TestClient:
    return TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)


def grants(runtime: Runtime) -> MemoryGrantStore:
    store = runtime.grants
    assert isinstance(store, MemoryGrantStore)
    return store


def authorize_query(**overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": REDIRECT,
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "state": "st-123",
    }
    params.update(overrides)
    return urlencode(params)


def path_of(location: str) -> str:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == BASE
    return f"{parts.path}?{parts.query}"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def start(browser: TestClient, **overrides: str) -> str:
    """/authorize → the dev login page's path."""
    response = browser.get(f"/demo/echo/authorize?{authorize_query(**overrides)}")
    assert response.status_code == 303, response.text
    return path_of(response.headers["location"])


def sign_in(browser: TestClient, username: str = "alice", password: str = "alice-password") -> Any:
    login_path = start(browser)
    page = browser.get(login_path)
    assert page.status_code == 200, page.text
    pending_id = parse_qs(urlsplit(login_path).query)["p"][0]
    form = {"p": pending_id, "csrf": csrf_of(page.text), "username": username, "password": password}
    return browser.post("/demo/login", data=form)


def to_consent(browser: TestClient) -> tuple[str, str]:
    response = sign_in(browser)
    assert response.status_code == 303, response.text
    consent_path = path_of(response.headers["location"])
    assert consent_path.startswith("/demo/echo/consent?p=")
    page = browser.get(consent_path)
    assert page.status_code == 200, page.text
    return parse_qs(urlsplit(consent_path).query)["p"][0], page.text


def consent_page_of(browser: TestClient, **overrides: str) -> str:
    """The consent page alice sees for an /authorize with ``overrides``."""
    login_path = start(browser, **overrides)
    page = browser.get(login_path)
    pending_id = parse_qs(urlsplit(login_path).query)["p"][0]
    form = {"p": pending_id, "csrf": csrf_of(page.text), "username": "alice", "password": "alice-password"}
    signed_in = browser.post("/demo/login", data=form)
    assert signed_in.status_code == 303, signed_in.text
    consent = browser.get(path_of(signed_in.headers["location"]))
    assert consent.status_code == 200, consent.text
    return consent.text


def test_a_full_dev_login_flow_issues_a_code_with_state_and_iss(runtime: Runtime, browser: TestClient) -> None:
    # Given alice signed in and looking at the consent page
    pending_id, html = to_consent(browser)
    assert "Claude Code (test)" in html and "Echo (demo)" in html and "127.0.0.1:9001" in html
    # When she approves
    response = browser.post("/demo/echo/consent", data={"p": pending_id, "csrf": csrf_of(html), "decision": "approve"})
    # Then the client gets a code, its state and the issuer (RFC 9207), and the pending authorization is gone
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    assert query["state"] == ["st-123"] and query["iss"] == [f"{BASE}/demo/echo"]
    code = grants(runtime).get_code(hash_secret(query["code"][0]), 0)
    assert code is not None
    assert (code.user_id, code.client_id, code.scopes, code.redirect_uri) == ("alice", "client-1", ("mcp",), REDIRECT)
    assert code.code_challenge == s256(VERIFIER) and code.resource == f"{BASE}/demo/echo/mcp" and code.grant_id
    assert code.user_groups == ("engineering",) and code.signed_in_at is not None
    assert grants(runtime).get_pending(pending_id, 0) is None
    assert "mcpgw-p-" in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]


def test_pages_carry_the_security_headers_and_the_cookie_is_host_prefixed(browser: TestClient) -> None:
    response = browser.get(f"/demo/echo/authorize?{authorize_query()}")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-mcpgw-p-")
    for attribute in ("Secure", "HttpOnly", "SameSite=lax", "Path=/"):
        assert attribute in cookie
    assert "Domain" not in cookie
    page = browser.get(path_of(response.headers["location"]))
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:33418" in csp  # the redirect after the POST
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


def test_on_plain_http_the_cookie_has_no_prefix_and_no_secure() -> None:
    runtime = runtime_with(base_url="http://127.0.0.1:8080")
    browser = TestClient(authorize_app.create_app(runtime), base_url="http://127.0.0.1:8080", follow_redirects=False)
    response = browser.get(f"/demo/echo/authorize?{authorize_query()}")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mcpgw-p-") and "Secure" not in cookie and "HttpOnly" in cookie


def test_consent_post_with_a_wrong_csrf_token_issues_nothing(runtime: Runtime, browser: TestClient) -> None:
    pending_id, _ = to_consent(browser)
    response = browser.post("/demo/echo/consent", data={"p": pending_id, "csrf": "forged", "decision": "approve"})
    assert response.status_code == 400
    assert "CSRF" in response.text
    assert grants(runtime)._codes == {}
    assert grants(runtime).get_pending(pending_id, 0) is not None


def test_consent_from_another_browser_is_refused(runtime: Runtime, browser: TestClient) -> None:
    pending_id, html = to_consent(browser)
    other = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    response = other.post("/demo/echo/consent", data={"p": pending_id, "csrf": csrf_of(html), "decision": "approve"})
    assert response.status_code == 400
    assert "another browser" in response.text
    assert grants(runtime)._codes == {}


def test_deny_sends_access_denied_and_no_code(runtime: Runtime, browser: TestClient) -> None:
    pending_id, html = to_consent(browser)
    response = browser.post("/demo/echo/consent", data={"p": pending_id, "csrf": csrf_of(html), "decision": "deny"})
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert response.status_code == 303
    assert (
        query["error"] == ["access_denied"] and query["state"] == ["st-123"] and query["iss"] == [f"{BASE}/demo/echo"]
    )
    assert grants(runtime)._codes == {}


def test_a_remembered_consent_skips_the_consent_page(runtime: Runtime, browser: TestClient) -> None:
    # Given alice approved client-1 before (a redeemed code created an active grant and the consent)
    store = grants(runtime)
    route = runtime.routes.get("demo", "echo")
    assert route is not None
    now, alice = runtime.now(), SignedInUser("alice")
    earlier = new_code(
        route=route, client_id="client-1", redirect_uri=REDIRECT, code_challenge=s256(VERIFIER), scopes=("mcp",),
        user=alice, signed_in_at=now, now=now, lifetime_seconds=300,
    ).record  # fmt: skip
    grant = new_grant(
        route=route, client_id="client-1", user=alice, scopes=("mcp",), now=now, absolute_lifetime_seconds=86400,
        grant_id="grant-1",
    )  # fmt: skip
    store.put_code(earlier)
    store.redeem_code(
        earlier.code_hash, grant, Consent("demo/echo", "client-1", "alice", ("mcp",), "grant-1", now), now
    )
    # When she signs in again
    response = sign_in(browser)
    # Then the code is issued at once
    assert response.status_code == 303
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert "code" in query and query["iss"] == [f"{BASE}/demo/echo"]
    # And once the grant is revoked she is asked again
    store.revoke_grant("grant-1", 2, "test")
    again = sign_in(browser)
    assert path_of(again.headers["location"]).startswith("/demo/echo/consent")


def test_a_user_outside_the_access_policy_is_denied_and_no_code_is_issued() -> None:
    runtime = runtime_with({"groups": ["engineering"]})
    browser = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    response = sign_in(browser, "bob", "bob-password")
    assert response.status_code == 403
    assert "not allowed to use Echo (demo)" in response.text
    link = re.search(r'<a[^>]*href="([^"]+)"', response.text)
    assert link
    query = parse_qs(urlsplit(link.group(1).replace("&amp;", "&")).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st-123"]
    assert grants(runtime)._codes == {} and grants(runtime)._pending == {}
    # alice (group engineering) is allowed
    assert sign_in(browser).status_code == 303


def test_a_wrong_password_shows_the_form_again(browser: TestClient) -> None:
    response = sign_in(browser, "alice", "nope")
    assert response.status_code == 401
    assert "Wrong username or password" in response.text


def test_an_unknown_client_gets_an_html_error_page_not_a_redirect(browser: TestClient) -> None:
    response = browser.get(f"/demo/echo/authorize?{authorize_query(client_id='nobody')}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "Unknown application" in response.text and "nobody" in response.text
    assert response.headers["x-frame-options"] == "DENY"


def test_missing_pkce_of_a_preregistered_client_is_redirected_to_the_client(browser: TestClient) -> None:
    query_string = authorize_query(client_id="admin-client", code_challenge_method="plain")
    response = browser.get(f"/demo/echo/authorize?{query_string}")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert response.status_code == 303
    assert query["error"] == ["invalid_request"] and query["iss"] == [f"{BASE}/demo/echo"]


def test_the_gateway_is_no_open_redirector_for_a_registered_clients_errors(runtime: Runtime) -> None:
    # Given a client that registered itself with https://evil.example/cb (DCR: nobody vouched for the URI)
    browser = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    # When a victim is sent to /authorize without response_type (RFC 9700 §4.11.2)
    query = urlencode({"client_id": "evil", "redirect_uri": "https://evil.example/cb", "state": "s"})
    response = browser.get(f"/demo/echo/authorize?{query}")
    # Then the gateway shows its own error page; nothing sends the browser on, and nothing is stored
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "response_type is required" in response.text
    # And the way back to the client is a link the user chooses to follow, naming where it goes
    link = re.search(r'<a class="button" href="([^"]+)"', response.text)
    assert link and link.group(1).startswith("https://evil.example/cb?error=invalid_request")
    assert "returns the error to https://evil.example" in response.text
    assert grants(runtime)._pending == {}


@pytest.mark.parametrize(("client_id", "shown"), [("edge-client", "evil.example"), ("safari-client", "evil.example")])
def test_the_consent_page_warns_when_the_redirect_opens_a_browser(
    browser: TestClient, client_id: str, shown: str
) -> None:
    # Given a client whose redirect URI's scheme opens a web browser (Edge on Windows, Safari on iOS)
    redirect_uri = FakeLookup.clients[client_id].redirect_uris[0]
    # When alice reaches its consent page
    html = consent_page_of(browser, client_id=client_id, redirect_uri=redirect_uri)
    # Then a visible alert says the answer goes to another application that opens that website
    alert = re.search(r'<div class="notice bad" role="alert">(.*?)</div>', html, re.S)
    assert alert is not None and "another application" in alert.group(1) and shown in alert.group(1)


def test_a_native_apps_own_scheme_is_described_without_alarm(browser: TestClient) -> None:
    html = consent_page_of(browser, client_id="cursor-client", redirect_uri="cursor://anysphere.cursor-mcp/cb")
    assert "an application on this device (cursor: link)" in html and 'role="alert"' not in html


def test_the_consent_page_never_renders_bidi_or_zero_width_characters_of_a_client_name(browser: TestClient) -> None:
    html = consent_page_of(browser, client_id="bidi-client")
    for invisible in ("\u202e", "\u200b", "\u2066", "\u2069"):
        assert invisible not in html
    assert "EviledoC edualCx" in html


def test_an_unknown_route_is_a_404_page(browser: TestClient) -> None:
    assert browser.get(f"/demo/nope/authorize?{authorize_query()}").status_code == 404


def test_the_dev_login_is_refused_in_a_deployed_stage() -> None:
    browser = TestClient(authorize_app.create_app(runtime_with(stage="prod")), base_url=BASE, follow_redirects=False)
    response = browser.get(f"/demo/echo/authorize?{authorize_query()}")
    assert response.status_code == 403
    assert "development login" in response.text and "error=server_error" in response.text


def test_an_expired_pending_authorization_says_so(runtime: Runtime, browser: TestClient) -> None:
    login_path = start(browser)
    runtime.clock = lambda: 10**10
    response = browser.get(login_path)
    assert response.status_code == 400 and "expired" in response.text


def test_the_consent_page_warns_about_an_unknown_website(runtime: Runtime, browser: TestClient) -> None:
    response = browser.get(
        f"/demo/echo/authorize?{authorize_query(client_id='web-client', redirect_uri='https://unknown.example.net/cb')}"
    )
    login_path = path_of(response.headers["location"])
    page = browser.get(login_path)
    pending_id = parse_qs(urlsplit(login_path).query)["p"][0]
    form = {"p": pending_id, "csrf": csrf_of(page.text), "username": "alice", "password": "alice-password"}
    consent = browser.get(path_of(browser.post("/demo/login", data=form).headers["location"]))
    assert "Check this address" in consent.text and "unknown.example.net" in consent.text
    assert "form-action 'self' https://unknown.example.net" in consent.headers["content-security-policy"]


def test_route_descriptions_show_markdown_code_spans_as_code_and_escape_the_rest() -> None:
    from gateway.web.common.pages import inline_code

    rendered = str(inline_code("Runs `echo` <script>alert(1)</script>"))
    assert rendered == "Runs <code>echo</code> &lt;script&gt;alert(1)&lt;/script&gt;"


def test_the_sign_in_page_opened_without_a_sign_in_in_progress_says_what_to_do_instead(browser: TestClient) -> None:
    # Given no sign-in in progress (a bookmark, a link shared from another browser)
    # When the sign-in page is opened
    response = browser.get("/demo/login")

    # Then it says what the page is for, where to start instead, and where the user's authorizations are
    assert response.status_code == 400
    assert "No sign-in in progress" in response.text
    assert "open the route in your MCP client" in response.text
    assert f"{BASE}/demo/connections" in response.text


def test_an_identity_provider_user_named_like_a_service_cannot_sign_in() -> None:
    # Given an identity provider that names one of its users in the form reserved for services (no configuration may
    # say so for the dev login, so the provider's answer is built here as an OpenID provider could send it)
    config = parse_config(example_config_data())
    workspace = config.workspaces["demo"]
    provider = workspace.identity_provider
    assert isinstance(provider, DevLoginProvider)
    impostor = DevUser.model_construct(id="service:ci", password="pw", name=None, email=None, groups=[])
    provider = provider.model_copy(update={"users": [*provider.users, impostor]})
    workspace = workspace.model_copy(update={"identity_provider": provider})
    runtime = memory_runtime(config.model_copy(update={"workspaces": {"demo": workspace}}))
    runtime.__dict__["client_resolver"] = FakeLookup()
    browser = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    # When that user signs in
    response = sign_in(browser, "service:ci", "pw")
    # Then the sign-in is refused: no consent, no code, and the pending authorization is gone
    assert response.status_code == 403 and "cannot sign in here" in response.text
    assert "reserved for the gateway" in response.text
    assert grants(runtime)._codes == {} and grants(runtime)._pending == {}


def test_a_consent_submitted_twice_at_once_issues_one_code(runtime: Runtime, browser: TestClient) -> None:
    # Given alice on the consent page, and two submissions of it racing: each read the pending authorization
    # before either answered (the store is made to answer the second read as it answered the first)
    pending_id, html = to_consent(browser)
    store = grants(runtime)
    first_read = store.get_pending(pending_id, runtime.now())
    store.get_pending = lambda pending_id, now: first_read  # type: ignore[method-assign]
    form = {"p": pending_id, "csrf": csrf_of(html), "decision": "approve"}

    # When both are processed (each sent with the cookies the browser held before either answer came back)
    cookies = dict(browser.cookies)
    answers = []
    for _ in range(2):
        browser.cookies = cookies
        answers.append(browser.post("/demo/echo/consent", data=form))

    # Then one code goes to the client and the other submission is told the sign-in was used
    assert [answer.status_code for answer in answers] == [303, 400]
    assert "code=" in answers[0].headers["location"] and "already used" in answers[1].text
    assert len(store._codes) == 1


def test_the_consent_page_loads_no_image_from_the_clients_server(browser: TestClient) -> None:
    # Given a client whose metadata names a logo on its own server (a tracking pixel for who opens consent, and when)
    html = consent_page_of(browser, client_id="logo-client")
    # Then the page shows no remote image, and its policy would not load one
    assert "tracker.example" not in html and "<img" not in html
    response = browser.get(f"/demo/echo/authorize?{authorize_query()}")
    page = browser.get(path_of(response.headers["location"]))
    csp = page.headers["content-security-policy"]
    assert "img-src 'self' data:;" in csp and "https:" not in csp.split("img-src", 1)[1].split(";", 1)[0]


def test_an_unreadable_shared_secret_is_a_503_page() -> None:
    # Given a container whose Secrets Manager read fails (the adapter raises the secret port's error)
    from botocore.exceptions import EndpointConnectionError

    class Unreachable:
        def get_secret_value(self, **_: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")

    runtime = runtime_with()
    del runtime.__dict__["shared_secret"]
    runtime.__dict__["secretsmanager"] = Unreachable()
    browser = TestClient(authorize_app.create_app(runtime), base_url=BASE, follow_redirects=False)
    # When a sign-in starts (its cookie is signed with that secret), then a clear 503 page, not a 500
    response = browser.get(f"/demo/echo/authorize?{authorize_query()}")
    assert response.status_code == 503 and "Try again shortly" in response.text

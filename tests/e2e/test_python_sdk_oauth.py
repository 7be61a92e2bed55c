"""The official ``mcp`` Python SDK against the gateway, given nothing but a route URL, the way a user adds a server.

The SDK's OAuth client provider runs MCP authorization on its own: 401 → Protected Resource Metadata →
authorization-server metadata → client registration (DCR) or a client ID metadata document (CIMD) → authorization
with PKCE. Its redirect handler hands the authorization URL to headless Chromium, where alice signs in (the dev
login, or the sign-in page of a locally run oidc-provider) and approves the consent page; the browser then lands on
the client's loopback redirect URI, whose code and state go to the SDK's callback handler. The SDK exchanges the
code and lists and calls tools through the gateway's proxy.

Screenshots of every sign-in and consent page are saved under ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata, OAuthToken
from mcp.types import TextContent

from infra.devserver import DevServer
from tests.support.browser import Browser, chromium
from tests.support.mcp_client import MemoryStorage, run_async
from tests.support.sign_in import BrowserVisit, LoopbackCallback, User, authorize_in_browser, loopback_callback
from tests.unit.net.https_server import Reply

if TYPE_CHECKING:  # pytest loads the conftest itself; importing it again would run it twice
    from tests.e2e.conftest import IsolatedGateway

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALICE = User("alice", "alice-password")
CLIENT_NAME = "Python SDK (e2e)"


@dataclass
class Person:
    """The user at the browser, as the SDK's redirect and callback handlers see them."""

    browser: Browser
    callback: LoopbackCallback
    user: User = ALICE
    visits: list[BrowserVisit] = field(default_factory=list)

    async def open_authorization_url(self, authorization_url: str) -> None:
        visit = await authorize_in_browser(
            self.browser, authorization_url, redirect_uri=self.callback.redirect_uri, user=self.user
        )
        self.visits.append(visit)

    async def authorization_response(self) -> AuthorizationCodeResult:
        params = await self.callback.wait()
        assert "code" in params, f"the gateway redirected with an error: {params}"
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


def client_metadata(callback: LoopbackCallback) -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name=CLIENT_NAME,
        redirect_uris=[callback.redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )


def sdk_provider(
    url: str, storage: MemoryStorage, person: Person, *, client_metadata_url: str | None = None
) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=url,
        client_metadata=client_metadata(person.callback),
        storage=storage,
        redirect_handler=person.open_authorization_url,
        callback_handler=person.authorization_response,
        client_metadata_url=client_metadata_url,
    )


@dataclass
class Session:
    """What one MCP connection did: its tool list, the echo result, and the HTTP requests the SDK sent."""

    tools: list[str]
    echoed: list[str]
    requests: list[str]
    grant_types: list[str]  # of the requests to the token endpoint, in order


async def use_echo(url: str, provider: OAuthClientProvider, text: str) -> Session:
    """Connect with the SDK's Streamable HTTP client, list tools and call ``echo``."""
    requests: list[str] = []
    grant_types: list[str] = []

    async def record(request: httpx2.Request) -> None:
        requests.append(f"{request.method} {request.url.copy_with(query=None)}")
        if request.method == "POST" and request.url.path.endswith("/token"):
            grant_types.append(parse_qs(request.content.decode())["grant_type"][0])

    async with (
        httpx2.AsyncClient(auth=provider, timeout=30, event_hooks={"request": [record]}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("echo", {"text": text})
    assert not result.is_error, result
    echoed = [item.text for item in result.content if isinstance(item, TextContent)]
    return Session([tool.name for tool in tools.tools], echoed, requests, grant_types)


# --- DCR and the dev login ------------------------------------------------------------------------------------


def test_the_sdk_registers_signs_alice_in_gets_her_consent_and_calls_echo(
    dev_server: DevServer, artifacts: Path
) -> None:
    # Given the SDK client with its OAuth provider, told only the demo route's URL, and alice at a browser
    url = f"{dev_server.url}/demo/echo/mcp"
    issuer = f"{dev_server.url}/demo/echo"

    async def scenario() -> tuple[Session, Person, OAuthClientProvider]:
        with loopback_callback() as callback:
            async with chromium(artifacts) as browser:
                person = Person(browser, callback)
                provider = sdk_provider(url, MemoryStorage(), person)
                # When it connects, lists tools and calls echo
                session = await use_echo(url, provider, "hello from the Python SDK")
                return session, person, provider

    session, person, provider = run_async(scenario)

    # Then it discovered the route's authorization server and registered itself there (DCR)
    assert f"POST {issuer}/register" in session.requests
    assert provider.context.client_info is not None
    assert provider.context.client_info.client_id
    # And alice saw the dev sign-in, then the consent page, once each
    (visit,) = person.visits
    assert visit.kinds == ["sign-in", "consent"]
    sign_in = visit.page("sign-in")
    assert CLIENT_NAME in sign_in.text and "Echo (demo)" in sign_in.text
    consent = visit.page("consent")
    assert f"{CLIENT_NAME} wants to use Echo (demo) as you" in consent.text
    assert "demo/echo" in consent.text
    assert "dynamic client registration" in consent.text
    assert "Signed in as Alice Example" in consent.text
    # And the browser reported no error on the gateway's pages (a CSP violation would show here)
    assert visit.errors_on(dev_server.url) == []
    # And the browser came back to the client with a code for this issuer (RFC 9207)
    assert parse_qs(visit.final_url.split("?", 1)[1])["iss"] == [issuer]
    # And the SDK exchanged the code, sees the demo upstream's tools, and echo answered through the gateway
    assert session.grant_types == ["authorization_code"]
    assert "echo" in session.tools
    assert session.echoed == ["hello from the Python SDK"]
    assert [path.name for path in sorted(artifacts.glob("*.png"))] == ["01-sign-in.png", "02-consent.png"]


def test_a_returning_sdk_client_reuses_or_refreshes_its_tokens_and_is_not_asked_for_consent_again(
    dev_server: DevServer, artifacts: Path
) -> None:
    # Given the SDK client that registered and was approved by alice, with its tokens stored
    url = f"{dev_server.url}/demo/echo/mcp"

    async def scenario() -> tuple[list[Session], Person, list[OAuthToken | None]]:
        with loopback_callback() as callback:
            async with chromium(artifacts) as browser:
                person = Person(browser, callback)
                storage = MemoryStorage()
                provider = sdk_provider(url, storage, person)
                sessions = [await use_echo(url, provider, "first")]
                stored = [storage.tokens]

                # When it is started again and connects with the stored tokens
                sessions.append(await use_echo(url, sdk_provider(url, storage, person), "second"))

                # And when the first client's access token has expired (the SDK then refreshes before the request)
                provider.context.token_expiry_time = time.time() - 1
                sessions.append(await use_echo(url, provider, "third"))
                stored.append(storage.tokens)

                # And when it has lost its tokens but kept its registration (a new authorization)
                storage.tokens = None
                sessions.append(await use_echo(url, sdk_provider(url, storage, person), "fourth"))
                return sessions, person, stored

    (first, second, third, fourth), person, (tokens, refreshed) = run_async(scenario)
    assert first.grant_types == ["authorization_code"]

    # Then the restarted client used its stored access token: no browser, no token request
    assert second.grant_types == []
    assert second.echoed == ["second"]
    # And the expired one refreshed at the route's token endpoint, without the browser, and got rotated tokens
    assert third.grant_types == ["refresh_token"]
    assert f"POST {dev_server.url}/demo/echo/token" in third.requests
    assert tokens is not None and refreshed is not None
    assert refreshed.access_token != tokens.access_token
    assert refreshed.refresh_token not in (None, tokens.refresh_token)
    assert third.echoed == ["third"]
    # And the one without tokens signed alice in again but skipped consent: her approval is remembered
    assert [visit.kinds for visit in person.visits] == [["sign-in", "consent"], ["sign-in"]]
    assert fourth.grant_types == ["authorization_code"]
    assert not any(request.endswith("/register") for request in fourth.requests)
    assert fourth.echoed == ["fourth"]


# --- CIMD ---------------------------------------------------------------------------------------------------------


def test_the_sdk_identified_by_its_client_metadata_document_needs_no_registration(
    isolated_gateway: IsolatedGateway, artifacts: Path
) -> None:
    # Given a client metadata document published over https (with a name of its own, shown on the consent page)
    gateway = isolated_gateway
    url = f"{gateway.url}/demo/echo/mcp"
    path = "/clients/python-sdk-e2e.json"
    document_url = gateway.cimd.url(path)

    async def scenario() -> tuple[Session, Person, OAuthClientProvider]:
        with loopback_callback() as callback:
            document = {
                "client_id": document_url,
                "client_name": "Python SDK (metadata document)",
                "client_uri": "https://example.com/python-sdk-e2e",
                "redirect_uris": [callback.redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
            gateway.cimd.https.replies[path] = Reply(
                200, json.dumps(document).encode(), {"Content-Type": "application/json"}
            )
            async with chromium(artifacts) as browser:
                person = Person(browser, callback)
                # When the SDK, configured with the document's URL as its client ID, connects and calls echo
                provider = sdk_provider(url, MemoryStorage(), person, client_metadata_url=document_url)
                session = await use_echo(url, provider, "hello via CIMD")
                return session, person, provider

    session, person, provider = run_async(scenario)

    # Then the gateway advertised CIMD, the SDK used the URL as its client_id and registered nothing
    assert provider.context.oauth_metadata is not None
    assert provider.context.oauth_metadata.client_id_metadata_document_supported is True
    assert provider.context.client_info is not None
    assert provider.context.client_info.client_id == document_url
    assert not any(request.endswith("/register") for request in session.requests)
    # And the gateway fetched the document, and alice's consent page names the client as the document does
    assert gateway.cimd.https.hits.get(path, 0) >= 1
    (visit,) = person.visits
    assert visit.kinds == ["sign-in", "consent"]
    consent = visit.page("consent")
    assert "Python SDK (metadata document) wants to use Echo (demo) as you" in consent.text
    assert "client metadata document" in consent.text and document_url in consent.text
    assert "https://example.com/python-sdk-e2e" in consent.text
    assert visit.errors_on(gateway.url) == []
    # And the tools work
    assert "echo" in session.tools
    assert session.echoed == ["hello via CIMD"]


# --- a workspace whose identity provider is oidc-provider ---------------------------------------------------------


def test_the_sdk_signs_alice_in_at_the_workspaces_openid_provider(
    isolated_gateway: IsolatedGateway, artifacts: Path
) -> None:
    # Given the route echo of workspace corp, whose users sign in at a locally run oidc-provider
    gateway = isolated_gateway
    url = f"{gateway.url}/corp/echo/mcp"

    async def scenario() -> tuple[Session, Person]:
        with loopback_callback() as callback:
            async with chromium(artifacts) as browser:
                person = Person(browser, callback)
                # When the SDK connects (DCR), alice signs in at the provider, approves, and the SDK calls echo
                session = await use_echo(url, sdk_provider(url, MemoryStorage(), person), "hello from corp")
                return session, person

    session, person = run_async(scenario)

    # Then she signed in at the provider's page (not the dev login) and saw the gateway's consent page
    (visit,) = person.visits
    assert visit.kinds == ["idp-sign-in", "consent"]
    assert visit.page("idp-sign-in").url.startswith(gateway.idp.issuer)
    consent = visit.page("consent")
    assert f"{CLIENT_NAME} wants to use Echo (corp) as you" in consent.text
    assert "corp/echo" in consent.text
    # And her name came from the provider
    assert "Signed in as Alice Example" in consent.text
    assert visit.errors_on(gateway.url) == []
    assert f"POST {gateway.url}/corp/echo/register" in session.requests
    assert "echo" in session.tools
    assert session.echoed == ["hello from corp"]

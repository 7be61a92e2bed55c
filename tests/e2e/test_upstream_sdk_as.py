"""An upstream whose authorization server is the official ``mcp`` SDK's own (tests/fixtures/sdk_upstream_as.py:
the SDK's metadata, registration, authorize, token and revocation handlers, with sign-in and consent pages of its
own), behind a per-user OAuth route — issue 24 item 7: before, the SDK's token endpoint refused every code exchange
(``invalid_client "Missing client_id"``) and each retry registered another client.

In headless Chromium, as a user would: alice starts an MCP client's authorization at the gateway, connects the
upstream from the consent page (first denying at the upstream, which the consent page then explains, then allowing),
approves; the client calls a tool with her upstream account; the stored token expires and the next call is served
after a refresh; the upstream revokes her tokens and the call answers ``-32042`` with a connect link; she follows
it, consents at the upstream again, and the same call works; disconnecting on My connections revokes the token at
the upstream. The gateway registered exactly once throughout.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import httpx
import pytest
from playwright.async_api import Page

from gateway.crypto.pkce import s256
from infra.dev import gateway_environment
from infra.devserver import REPO_ROOT
from infra.local_aws import LOCAL_ACCESS_KEY
from infra.template import LOCAL_REGION
from tests.conftest import LocalAwsStack, pick_free_port
from tests.e2e.test_upstream_oauth import _GATEWAY_SCRIPT, McpSession, _start, _stop, _whoami
from tests.support.browser import Browser, chromium
from tests.support.mcp_client import run_async
from tests.support.rate_limits import generous_rate_limits
from tests.support.sign_in import loopback_callback

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "sdk_upstream_as.py"
HOST = "127.0.0.1"
# A workspace of its own: the session's tables are shared, and test_upstream_oauth leaves alice connected at acme/notes.
WORKSPACE = "sdk-as"
ROUTE = f"{WORKSPACE}/sdk-notes"
VERIFIER = "sdk-as-e2e-verifier-" + "y" * 40


@dataclass(frozen=True)
class Stack:
    gateway: str
    upstream: str
    issuer: str
    endpoint_url: str
    upstream_tokens_table: str

    @property
    def mcp(self) -> str:
        return f"{self.gateway}/{ROUTE}/mcp"

    def stats(self) -> dict[str, int]:
        return dict(httpx.get(f"{self.issuer}/admin/stats", trust_env=False).json())


def _config(upstream: str) -> str:
    return f"""
oauth:
  cimd_allow_private_addresses: true   # the upstream and its authorization server run on 127.0.0.1 over http
workspaces:
  {WORKSPACE}:
    title: Acme
    identity_provider:
      type: dev
      users:
        - {{id: alice, password: alice-password, name: Alice Example}}
    servers:
      sdk-notes:
        title: Notes (SDK)
        upstream: {upstream}
        auth: {{type: oauth}}
"""


@pytest.fixture(scope="module")
def stack(
    local_aws: LocalAwsStack, template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    upstream_port, gateway_port = pick_free_port(), pick_free_port()
    issuer = f"http://{HOST}:{upstream_port}"
    gateway = f"http://{HOST}:{gateway_port}"
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("GATEWAY_")}
    processes = []
    try:
        processes.append(_start([sys.executable, str(FIXTURE), str(upstream_port)], base_env, "listening"))
        config = tmp_path_factory.mktemp("sdk-as") / "gateway.yaml"
        config.write_text(_config(f"{issuer}/mcp"), encoding="utf-8")
        env = gateway_environment(
            template, endpoint_url=local_aws.endpoint_url, refs=local_aws.refs, public_base_url=gateway,
            config_path=config,
        )  # fmt: skip
        env["GATEWAY_UPSTREAM_TOKEN_CACHE_SECONDS"] = "0"  # see stored changes (the expiry moved) at once
        env.update(generous_rate_limits(env))  # the session's earlier sign-ins share the counters
        gateway_env = {**base_env, **env, "E2E_GATEWAY_ENV": json.dumps(env)}
        processes.append(
            _start([sys.executable, "-c", _GATEWAY_SCRIPT, str(gateway_port)], gateway_env, "listening", timeout=90)
        )
        yield Stack(gateway, f"{issuer}/mcp", issuer, local_aws.endpoint_url, env["GATEWAY_UPSTREAM_TOKENS_TABLE"])
    finally:
        for process in reversed(processes):
            _stop(process)


def _expire_stored_token(stack: Stack, subject: str) -> None:
    boto3.session.Session().client(
        "dynamodb", endpoint_url=stack.endpoint_url, region_name=LOCAL_REGION, aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_ACCESS_KEY,
    ).update_item(
        TableName=stack.upstream_tokens_table,
        Key={"pk": {"S": f"UPSTREAM#{ROUTE}"}, "sk": {"S": f"SUBJECT#{subject}"}},
        UpdateExpression="SET access_expires_at = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 60)}},
    )  # fmt: skip


# --- the user in the browser ------------------------------------------------------------------------------------


async def _submit(page: Page, selector: str) -> None:
    async with page.expect_navigation(wait_until="load"):
        await page.click(selector)


async def _gateway_sign_in(browser: Browser, page: Page) -> None:
    await page.wait_for_selector("input[name=username]")
    await browser.screenshot(page, "gateway-sign-in")
    await page.fill("input[name=username]", "alice")
    await page.fill("input[name=password]", "alice-password")
    await _submit(page, "form button[type=submit]")


async def _at_the_upstream(browser: Browser, page: Page, decision: str) -> str:
    """The SDK authorization server's own pages: sign in, then Allow or Deny. Returns its consent page's text."""
    await page.wait_for_selector("#upstream-login")
    await browser.screenshot(page, "upstream-sign-in")
    await page.fill("input[name=user]", "alice")
    await page.fill("input[name=secret]", "alice-password")
    await _submit(page, "#upstream-login button[type=submit]")
    text = await page.inner_text("body")
    await browser.screenshot(page, f"upstream-consent-{decision}")
    await _submit(page, f"button[name=decision][value={decision}]")
    return text


async def _authorize(stack: Stack, client_id: str, redirect_uri: str, artifacts: Path) -> dict[str, str]:
    """alice authorizes an MCP client, connecting her Notes account on the way (denied once, then allowed)."""
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "client-state",
        "code_challenge": s256(VERIFIER), "code_challenge_method": "S256", "resource": stack.mcp,
    }  # fmt: skip
    seen: dict[str, str] = {}
    async with chromium(artifacts) as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.gateway}/{ROUTE}/authorize?{urlencode(query)}")
        await _gateway_sign_in(browser, page)
        await page.wait_for_selector("text=Accounts to connect")
        await browser.screenshot(page, "consent-connect")
        await _submit(page, "a.button:has-text('Connect')")
        await _at_the_upstream(browser, page, "deny")
        await page.wait_for_selector("text=Accounts to connect")
        seen["after_deny"] = await page.inner_text("body")
        await browser.screenshot(page, "consent-after-deny")
        await _submit(page, "a.button:has-text('Connect')")
        seen["upstream_consent"] = await _at_the_upstream(browser, page, "allow")
        await page.wait_for_selector("button[name=decision][value=approve]:not([disabled])")
        await browser.screenshot(page, "consent-connected")
        await _submit(page, "button[name=decision][value=approve]")
        seen["final_url"] = page.url
    return seen


async def _reconnect(link: str, artifacts: Path) -> str:
    async with chromium(artifacts) as browser:
        page = await browser.new_page()
        await page.goto(link)
        await _gateway_sign_in(browser, page)
        await page.wait_for_selector("a.button:has-text('Continue')")
        await _submit(page, "a.button:has-text('Continue')")
        await _at_the_upstream(browser, page, "allow")
        await page.wait_for_selector("text=Connected")
        await browser.screenshot(page, "reconnected")
        return await page.inner_text("body")


async def _disconnect(stack: Stack, artifacts: Path) -> None:
    async with chromium(artifacts) as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.gateway}/{WORKSPACE}/connections")
        await _gateway_sign_in(browser, page)
        await page.wait_for_selector("text=Your connections")
        await page.goto(
            f"{stack.gateway}/{WORKSPACE}/connections?{urlencode({'disconnect': ROUTE})}"
        )  # its confirmation
        await _submit(page, f'button[name="disconnect"][value="{ROUTE}"]')
        await page.wait_for_selector("text=Your connections")
        await browser.screenshot(page, "disconnected")


# --- the MCP client -----------------------------------------------------------------------------------------------


def _register(stack: Stack, redirect_uri: str) -> str:
    metadata = {"client_name": "SDK AS e2e", "redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"}
    response = httpx.post(f"{stack.gateway}/{ROUTE}/register", json=metadata, trust_env=False)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def _token(stack: Stack, client_id: str, redirect_uri: str, code: str) -> str:
    form = {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "client_id": client_id,
        "code_verifier": VERIFIER, "resource": stack.mcp,
    }  # fmt: skip
    response = httpx.post(f"{stack.gateway}/{ROUTE}/token", data=form, trust_env=False)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_an_upstream_on_the_sdks_authorization_server_connects_calls_refreshes_and_reconsents(
    stack: Stack, artifacts: Path
) -> None:
    started = time.monotonic()
    with loopback_callback() as callback:
        client_id = _register(stack, callback.redirect_uri)
        # When alice authorizes the client and connects her upstream account (denying at the upstream first)
        seen = run_async(lambda: _authorize(stack, client_id, callback.redirect_uri, artifacts))
        answer = run_async(callback.wait)

    # Then the consent page said why the first connect failed, in words she can act on
    assert "Access was not allowed" in seen["after_deny"] and "Connect again" in seen["after_deny"]
    # And the upstream's consent page named the gateway's registration, and the client got its code
    assert "MCP Gateway (Acme) wants to use your notes as alice" in seen["upstream_consent"]
    assert seen["final_url"].startswith(callback.redirect_uri) and "code" in answer
    token = _token(stack, client_id, callback.redirect_uri, answer["code"])

    # When the client calls whoami
    mcp = McpSession(stack.mcp, token)
    status, initialized = mcp.request(
        "initialize",
        {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"url": {}}},
         "clientInfo": {"name": "sdk-as-e2e", "version": "1.0"}},
    )  # fmt: skip
    assert status == 200 and "result" in initialized, initialized
    assert mcp.notify("notifications/initialized") == 202
    status, result = mcp.call("whoami")
    # Then it reached the upstream with alice's token from the SDK's authorization server
    assert status == 200, result
    first = _whoami(result)
    assert first["subject"] == "alice"
    assert stack.stats() == {"registrations": 1, "exchanges": 1, "refreshes": 0, "revocations": 0}

    # When the stored token expires, the next call is served after a refresh at the SDK's token endpoint
    _expire_stored_token(stack, "alice")
    status, result = mcp.call("whoami")
    assert status == 200, result
    assert _whoami(result)["token"] != first["token"] and stack.stats()["refreshes"] == 1

    # When the upstream revokes her tokens, the call asks her to connect again (-32042 with a connect link)
    assert httpx.post(f"{stack.issuer}/admin/revoke?account=alice", trust_env=False).json()["revoked"] >= 1
    status, result = mcp.call("whoami")
    assert result.get("error", {}).get("code") == -32042, result
    (link,) = set(re.findall(r"https?://[^\s\"']+/connect\?for=[A-Za-z0-9._%\-]+", json.dumps(result["error"])))

    # When she follows the link and consents at the upstream again, the same call works in the same session
    assert "Connected" in run_async(lambda: _reconnect(link, artifacts))
    status, result = mcp.call("whoami")
    assert status == 200 and _whoami(result)["subject"] == "alice", result
    # And the gateway kept its one registration through the failure, the refresh and the reconnect
    assert stack.stats() == {"registrations": 1, "exchanges": 2, "refreshes": 1, "revocations": 0}

    # When she disconnects the account on My connections, the gateway revokes it at the upstream (RFC 7009)
    run_async(lambda: _disconnect(stack, artifacts))
    assert stack.stats()["revocations"] == 1
    status, result = mcp.call("whoami")
    assert result.get("error", {}).get("code") == -32042, result
    print(f"SDK authorization server upstream, end to end: {time.monotonic() - started:.1f} s")


# --- MCP 2026-07-28: connecting the account through input_required (issue 24 item 2) -------------------------------


async def _approve(stack: Stack, client_id: str, redirect_uri: str, artifacts: Path) -> None:
    """alice authorizes an MCP client (connecting her Notes account on the consent page if it asks)."""
    query = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "s",
        "code_challenge": s256(VERIFIER), "code_challenge_method": "S256", "resource": stack.mcp,
    }  # fmt: skip
    async with chromium(artifacts) as browser:
        page = await browser.new_page()
        await page.goto(f"{stack.gateway}/{ROUTE}/authorize?{urlencode(query)}")
        await _gateway_sign_in(browser, page)
        await page.wait_for_selector("button[name=decision][value=approve]")
        if await page.locator("a.button:has-text('Connect')").count():
            await _submit(page, "a.button:has-text('Connect')")
            await _at_the_upstream(browser, page, "allow")
            await page.wait_for_selector("button[name=decision][value=approve]:not([disabled])")
        await _submit(page, "button[name=decision][value=approve]")


async def _sdk_sessions(stack: Stack, token: str, artifacts: Path) -> dict[str, Any]:
    """A 2025-11-25 SDK client, then a 2026-07-28 one whose elicitation callback connects the account in the
    browser, as a user following the client's prompt would."""
    import httpx2
    from mcp import types
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    seen: dict[str, Any] = {"elicitations": []}
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(stack.mcp, http_client=http), mode="legacy", cache=None) as legacy,
    ):
        seen["legacy_instructions"] = legacy.instructions
        seen["legacy_tools"] = [tool.name for tool in (await legacy.list_tools()).tools]

    async def connect_in_the_browser(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen["elicitations"].append(params.model_dump(by_alias=True, exclude_none=True))
        url = getattr(params, "url", None)
        assert isinstance(url, str)
        seen["connected_page"] = await _reconnect(url, artifacts)
        return types.ElicitResult(action="accept")

    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(
            streamable_http_client(stack.mcp, http_client=http), elicitation_callback=connect_in_the_browser, cache=None
        ) as modern,
    ):
        seen["modern_version"] = modern.protocol_version
        seen["modern_instructions"] = modern.instructions
        result = await modern.call_tool("whoami", {})
        seen["whoami"] = result.structured_content or json.loads(result.content[0].text)  # type: ignore[union-attr]
    return seen


def test_a_2026_client_connects_the_account_through_input_required_and_the_retry_completes_the_call(
    stack: Stack, artifacts: Path
) -> None:
    started = time.monotonic()
    # Given alice authorized an MCP client, and then disconnected her Notes account on My connections
    with loopback_callback() as callback:
        client_id = _register(stack, callback.redirect_uri)
        run_async(lambda: _approve(stack, client_id, callback.redirect_uri, artifacts))
        answer = run_async(callback.wait)
    token = _token(stack, client_id, callback.redirect_uri, answer["code"])
    run_async(lambda: _disconnect(stack, artifacts))
    exchanges = stack.stats()["exchanges"]

    # When a 2025-11-25 client and then a 2026-07-28 client (the official Python SDK, whose elicitation callback
    # opens the URL in the browser and returns "accept") call the route
    seen = run_async(lambda: _sdk_sessions(stack, token, artifacts))

    # Then the 2025-11-25 client initialized (the account to connect named in the instructions) and lists the
    # connect tool
    assert "connect it at" in (seen["legacy_instructions"] or "")
    assert seen["legacy_tools"] == ["connect_sdk-notes"]
    # And the 2026-07-28 client negotiated that revision, got one URL-mode elicitation for the gateway's connect
    # link, and its retry completed the original call with alice's new upstream token
    assert seen["modern_version"] == "2026-07-28"
    (elicitation,) = seen["elicitations"]
    assert elicitation["mode"] == "url" and f"/{ROUTE}/connect?" in elicitation["url"]
    assert "Connected" in seen["connected_page"]
    assert seen["whoami"]["subject"] == "alice"
    assert stack.stats()["exchanges"] == exchanges + 1
    print(f"2026-07-28 input_required connect through the official SDK: {time.monotonic() - started:.1f} s")

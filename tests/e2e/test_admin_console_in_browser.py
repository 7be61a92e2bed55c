"""The admin console in headless Chromium, on the local stack (the admin function's Lambda handler behind the dev
server, moto): what an administrator sees and clicks.

One walk: an MCP client registers (DCR) and completes OAuth for bob, then calls a tool. bob, who is not one of the
workspace's admins, opens the console and is refused. alice opens it, signs in through the workspace's sign-in, and
sees every view: the Overview counts the call, Clients lists the client, Issuances its token, the Audit log its
tool call, the Sign-in funnel where it got to; she revokes the client's grant (asked first), after which the client's
next MCP call with the same token is 401. A form posted from another site into the console is refused and revokes
nothing. She creates an API key (its value shown once, whole) and looks at bob on Users. Screenshots of every view go
to ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.async_api import ViewportSize

from infra.devserver import DevServer
from tests.support.browser import Browser, chromium
from tests.support.mcp_client import run_async
from tests.support.oauth_http import mcp_call, obtain_grant

WINDOW: ViewportSize = {"width": 1440, "height": 900}
CLIENT_NAME = f"Console walk {secrets.token_hex(3)}"


@contextmanager
def attacker_site(target: str, fields: dict[str, str]) -> Iterator[str]:
    """A page on another site (``localhost``, not the gateway's ``127.0.0.1``) whose form posts itself to ``target``
    as soon as it loads (inline script: that site's own page, not the console's CSP)."""
    inputs = "".join(f'<input type="hidden" name="{name}" value="{value}">' for name, value in fields.items())
    page = (
        f'<!doctype html><form method="post" action="{target}">{inputs}</form>'
        "<script>document.forms[0].submit()</script>"
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def _sign_in(page: Any, user: str, password: str) -> None:
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", password)
    async with page.expect_navigation():
        await page.click("form button[type=submit]")


async def _bob_is_refused(base: str, browser: Browser) -> dict[str, Any]:
    page = await browser.new_page()
    await page.set_viewport_size(WINDOW)
    await page.goto(f"{base}/demo/admin")
    await _sign_in(page, "bob", "bob-password")
    await page.wait_for_selector("text=Administrators only")
    await browser.screenshot(page, "not-an-admin")
    again = await page.goto(f"{base}/demo/admin")
    return {"status_after_sign_in": again.status if again else None, "text": await page.inner_text("body")}


async def _walk(base: str, artifacts: Path, client_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    console = f"{base}/demo/admin"
    async with chromium(artifacts) as browser:
        seen["bob"] = await _bob_is_refused(base, browser)
    async with chromium(artifacts) as browser:
        page = await browser.new_page()
        await page.set_viewport_size(WINDOW)

        # Signed out, the console sends alice through the workspace's sign-in, then shows the Overview
        await page.goto(console)
        seen["sign_in_page"] = await page.inner_text("body")
        await _sign_in(page, "alice", "alice-password")
        await page.wait_for_selector("h1:has-text('Overview')")
        await page.click("a:has-text('hour')")
        await page.wait_for_selector("h1:has-text('Overview')")
        await browser.screenshot(page, "overview")
        seen["overview"] = await page.inner_text("body")

        # Clients: the client that just completed OAuth
        await page.goto(f"{console}/clients")
        await browser.screenshot(page, "clients")
        seen["clients"] = await page.inner_text("body")

        # Issuances of that client, its tool call in the audit log, its funnel
        await page.goto(f"{console}/issuances?client_id={quote(client_id)}")
        await browser.screenshot(page, "issuances")
        seen["issuances"] = await page.inner_text("body")
        await page.goto(f"{console}/audit?client_id={quote(client_id)}")
        await browser.screenshot(page, "audit-log")
        seen["audit"] = await page.inner_text("body")
        await page.goto(f"{console}/funnel?client_id={quote(client_id)}")
        await browser.screenshot(page, "sign-in-funnel")
        seen["funnel"] = await page.inner_text("body")

        # A form posted from another site into the console (a cross-site request forgery) is refused
        grants_url = f"{console}/grants?client_id={quote(client_id)}"
        await page.goto(grants_url)
        grant_id = (await page.locator("tbody tr td").nth(8).inner_text()).strip()
        with attacker_site(f"{console}/act", {"action": "revoke_grant", "id": grant_id}) as attacker:
            await page.goto(attacker)
            await page.wait_for_selector("text=Request refused")
            await browser.screenshot(page, "cross-site-post-refused")
            seen["cross_site"] = await page.inner_text("body")
        await page.goto(grants_url)
        seen["grants_after_attack"] = await page.inner_text("body")

        # Grants: revoke the client's grant, asked first
        await browser.screenshot(page, "grants")
        await page.click("tbody a.danger:has-text('revoke')")
        await page.wait_for_selector("button:has-text('Confirm')")
        await browser.screenshot(page, "revoke-question")
        seen["question"] = await page.inner_text("body")
        await page.click("button:has-text('Confirm')")
        await page.wait_for_selector("text=Ended:")
        await browser.screenshot(page, "revoked")
        seen["done"] = await page.inner_text("body")

        # API keys: create one, its value shown once, whole
        await page.goto(f"{console}/keys")
        await page.fill("input[name=user_id]", "bob")
        await page.fill("input[name=name]", f"walk {secrets.token_hex(2)}")
        await page.select_option("select[name=servers]", ["echo"])
        await page.click("button:has-text('Create key')")
        await page.wait_for_selector("#key-value")
        await browser.screenshot(page, "api-key-created")
        seen["key_value"] = (await page.inner_text("#key-value")).strip()
        await page.goto(f"{console}/keys")
        await browser.screenshot(page, "api-keys")
        seen["keys"] = await page.inner_text("body")

        # Users: everything bob holds, and the way to end it
        await page.goto(f"{console}/users?user_id=bob")
        await browser.screenshot(page, "users")
        seen["users"] = await page.inner_text("body")
        seen["grant_id"] = grant_id
    return seen


def test_an_admin_finds_the_new_client_sees_its_token_and_call_and_revokes_its_grant_in_the_browser(
    dev_server: DevServer, artifacts: Path
) -> None:
    base = dev_server.url
    # Given a client that just completed OAuth for bob, and called a tool with its token
    grant = obtain_grant(base, "demo", "echo", username="bob", password="bob-password", client_name=CLIENT_NAME)
    mcp_url = f"{base}/demo/echo/mcp"
    token = grant.tokens.access_token
    called = mcp_call(mcp_url, token, "tools/call", {"name": "echo", "arguments": {"text": "seen by the console"}})
    assert called["content"][0]["text"] == "seen by the console"

    client_id = grant.registration.client_id
    seen = run_async(lambda: _walk(base, artifacts, client_id))

    after = httpx.post(
        mcp_url,
        json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"text": "x"}}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2025-06-18"},
    )  # fmt: skip

    # bob, not an admin, is refused after signing in
    assert seen["bob"]["status_after_sign_in"] == 403 and "is not an administrator" in seen["bob"]["text"]
    # alice signed in through the workspace's own sign-in, for the console
    assert "administer this workspace" in seen["sign_in_page"]
    # the Overview counts the call; Clients lists the client; its issuance, tool call and funnel are shown
    assert "demo/echo echo" in seen["overview"]
    assert CLIENT_NAME in seen["clients"] and client_id in seen["clients"]
    assert "bob" in seen["issuances"] and "Bearer" in seen["issuances"] and "authorization_code" in seen["issuances"]
    assert "tool.called" in seen["audit"] and "tool=echo" in seen["audit"]
    assert "called a tool\t1" in seen["funnel"]
    # the forged cross-site form revoked nothing; the admin's own revocation (asked first) did
    assert "Request refused" in seen["cross_site"]
    assert "active" in seen["grants_after_attack"]
    assert "Revoke" in seen["question"] and "refused (401)" in seen["question"]
    assert seen["grant_id"] in seen["done"]
    assert after.status_code == 401
    # the key's value is shown whole once, and never listed
    assert seen["key_value"].startswith("mcpgw_") and len(seen["key_value"]) >= 60
    assert seen["key_value"] not in seen["keys"]
    assert "Upstream accounts" in seen["users"] and "revoked" in seen["users"]

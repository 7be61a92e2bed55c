"""Consent and My connections in headless Chromium, on the local stack (the functions' Lambda handlers behind the dev
server, moto): what a user sees and clicks.

One walk: an MCP client ("Claude Code", registered by DCR) sends alice to consent in a 1280x800 window, where Approve
and Deny are in view without scrolling; after approving, the same browser opens My connections without signing in
again, sees her display name, the application with its permissions described and dates that do not break, revokes it
after the page asks, and is told what was done; the client's token is refused from then on. Sign out ends it.
Screenshots go to ``test-artifacts/<test name>/``.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.async_api import ViewportSize

from infra.devserver import DevServer
from tests.support.browser import Browser, chromium
from tests.support.mcp_client import run_async
from tests.support.oauth_http import ClientAuth, Pkce, exchange_code, register
from tests.support.sign_in import loopback_callback

WINDOW: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 420, "height": 800}
# Other tests of the session's stack authorize clients for alice too (some named "Claude Code"): this one is unique.
CLIENT_NAME = f"Claude Code {secrets.token_hex(3)}"

# Each `.date` is laid out on one line box (an inline element broken across lines has several client rects).
DATES_ON_ONE_LINE = "() => [...document.querySelectorAll('.date')].map(el => el.getClientRects().length)"


async def viewport_screenshot(browser: Browser, page: Any, step: str) -> Path:
    """What the window shows without scrolling (the helper's screenshots show the whole page)."""
    path = browser.artifacts / f"{len(browser.screenshots) + 1:02d}-{step}.png"
    await page.screenshot(path=str(path), full_page=False)
    browser.screenshots.append(path)
    return path


async def in_view(page: Any, selector: str) -> bool:
    box = await page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= WINDOW["height"]


async def _walk(base: str, artifacts: Path) -> dict[str, Any]:
    issuer = f"{base}/demo/echo"
    seen: dict[str, Any] = {}
    with loopback_callback() as callback:
        client = register(
            f"{issuer}/register",
            {
                "client_name": CLIENT_NAME,
                "redirect_uris": [callback.redirect_uri],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
            },
        )
        pkce = Pkce.new()
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": callback.redirect_uri,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "scope": "mcp offline_access",
            "state": "browser-walk",
            "resource": f"{issuer}/mcp",
        }
        async with chromium(artifacts) as browser:
            page = await browser.new_page()
            await page.set_viewport_size(WINDOW)

            # Sign in for the client, and consent in a 1280x800 window
            await page.goto(f"{issuer}/authorize?{urlencode(query)}")
            await page.fill("input[name=username]", "alice")
            await page.fill("input[name=password]", "alice-password")
            async with page.expect_navigation():
                await page.click("form button[type=submit]")
            await page.wait_for_selector("text=wants to use")
            await viewport_screenshot(browser, page, "consent-1280x800")
            seen["consent_buttons_in_view"] = [
                await in_view(page, "button[value=approve]"),
                await in_view(page, "button[value=deny]"),
            ]
            seen["consent_scrolled"] = await page.evaluate("() => window.scrollY")
            await page.click("button[value=approve]")
            code = (await callback.wait())["code"]
            tokens = await asyncio.to_thread(
                exchange_code,
                f"{issuer}/token",
                code=code,
                redirect_uri=callback.redirect_uri,
                code_verifier=pkce.verifier,
                auth=ClientAuth(client.client_id, None, "none"),
            )

            # My connections in the same browser: no second sign-in
            await page.goto(f"{base}/demo/connections")
            seen["asked_to_sign_in_again"] = await page.locator("input[name=password]").count() > 0
            await page.wait_for_selector("text=Your connections")
            await browser.screenshot(page, "my-connections-before-revoke")
            seen["before"] = await page.inner_text("body")
            await page.set_viewport_size(NARROW)
            seen["date_line_boxes"] = await page.evaluate(DATES_ON_ONE_LINE)
            await page.set_viewport_size(WINDOW)

            # Revoke… asks, then acts and reports
            await page.locator(f"li.account:has-text('{CLIENT_NAME}') a:has-text('Revoke')").click()
            await page.wait_for_selector("button[name=revoke]")
            await browser.screenshot(page, "revoke-question")
            seen["question"] = await page.inner_text("body")
            await page.click("button[name=revoke]")
            await page.wait_for_selector("text=Revoked:")
            await browser.screenshot(page, "my-connections-after-revoke")
            seen["after"] = await page.inner_text("body")
            seen["access_token"] = tokens.access_token

            # Sign out, and the page asks to sign in again
            async with page.expect_navigation():
                await page.click("button[name=sign_out]")
            seen["signed_out"] = await page.inner_text("body")
            await page.goto(f"{base}/demo/connections")
            seen["sign_in_after_sign_out"] = await page.locator("input[name=password]").count() > 0
            await browser.screenshot(page, "sign-in-after-sign-out")
    return seen


def test_consent_keeps_its_buttons_in_view_and_my_connections_shares_its_sign_in_and_revokes_after_asking(
    dev_server: DevServer, artifacts: Path
) -> None:
    seen = run_async(lambda: _walk(dev_server.url, artifacts))
    mcp_status_after_revoke = httpx.post(
        f"{dev_server.url}/demo/echo/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {seen['access_token']}", "Accept": "application/json, text/event-stream"},
    ).status_code

    # Consent at 1280x800: Approve and Deny are in the window as it opens
    assert seen["consent_buttons_in_view"] == [True, True] and seen["consent_scrolled"] == 0

    # My connections right after: no second sign-in, her display name, the application and its permissions in words
    assert seen["asked_to_sign_in_again"] is False
    assert "Signed in as Alice Example" in seen["before"]
    assert f"{CLIENT_NAME} on Echo (demo)" in seen["before"]
    assert "Use this MCP server on your behalf" in seen["before"]
    assert "Stay connected while you are away" in seen["before"]
    assert seen["date_line_boxes"] and set(seen["date_line_boxes"]) == {1}  # no date broken across lines

    # Revoke asked first, then said what it did; the client's token is refused from its next request
    assert f"Revoke {CLIENT_NAME}'s access to Echo (demo)?" in seen["question"]
    assert f"Revoked: {CLIENT_NAME} can no longer use Echo (demo) as you." in seen["after"]
    assert seen["after"].count(CLIENT_NAME) == 1  # in the report only: gone from the list
    assert mcp_status_after_revoke == 401

    # Sign out ends the session
    assert "You are signed out" in seen["signed_out"]
    assert seen["sign_in_after_sign_out"] is True

"""A user in the browser: signs in (the gateway's dev login or oidc-provider's login page), approves the consent
page, and lands on the MCP client's loopback redirect URI, served by :class:`LoopbackCallback` as a native client
(Claude Code, the SDK examples) serves it.

:func:`authorize_in_browser` follows whatever pages the gateway shows, screenshots each one before acting on it, and
reports which pages it saw, so a test can assert that a returning client was not asked for consent again.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import ConsoleMessage, Page

from tests.support.browser import Browser

DEV_LOGIN_FORM = "form input[name=username]"
IDP_LOGIN_FORM = "form input[name=login]"  # oidc-provider's development login page
CONSENT_APPROVE = "form button[name=decision][value=approve]"
CALLBACK_WAIT_SECONDS = 30
CLIENT_DONE_PAGE = b"<!doctype html><title>Signed in</title><p>Signed in. You can close this window.</p>"


@dataclass(frozen=True)
class User:
    login: str
    password: str


@dataclass
class PageSeen:
    kind: str  # "sign-in" (dev login), "idp-sign-in" (oidc-provider), "consent"
    url: str
    text: str  # the page's visible text, as a user reads it


@dataclass(frozen=True)
class ConsoleError:
    page_url: str
    text: str
    source: str  # the resource or script it is about, when the browser says


@dataclass
class BrowserVisit:
    """What the browser went through between the authorization URL and the client's redirect URI."""

    pages: list[PageSeen] = field(default_factory=list)
    final_url: str = ""
    console_errors: list[ConsoleError] = field(default_factory=list)  # CSP violations, failed resources...

    @property
    def kinds(self) -> list[str]:
        return [seen.kind for seen in self.pages]

    def errors_on(self, origin: str) -> list[ConsoleError]:
        """The console errors of pages served by ``origin`` (e.g. the gateway, not a third-party IdP)."""
        return [error for error in self.console_errors if error.page_url.startswith(origin)]

    def page(self, kind: str) -> PageSeen:
        matching = [seen for seen in self.pages if seen.kind == kind]
        assert matching, f"the browser never showed a {kind} page (saw {self.kinds})"
        return matching[0]


async def authorize_in_browser(
    browser: Browser, authorization_url: str, *, redirect_uri: str, user: User, max_pages: int = 6
) -> BrowserVisit:
    """Open ``authorization_url``, sign in as ``user`` wherever asked, approve consent, and stop once the browser
    reaches ``redirect_uri``. Fails with the page's text (and a screenshot) on any page it does not expect."""
    visit = BrowserVisit()
    page = await browser.new_page()
    page.on("console", lambda message: _console_error(visit, page, message))
    try:
        await page.goto(authorization_url)
        for _ in range(max_pages):
            if page.url.startswith(redirect_uri):
                visit.final_url = page.url
                return visit
            if await page.locator(DEV_LOGIN_FORM).count():
                await _record(browser, page, visit, "sign-in")
                await page.fill("input[name=username]", user.login)
                await page.fill("input[name=password]", user.password)
                await _submit(page, "form button[type=submit]")
            elif await page.locator(IDP_LOGIN_FORM).count():
                await _record(browser, page, visit, "idp-sign-in")
                await page.fill("input[name=login]", user.login)
                await page.fill("input[name=password]", user.password)
                await _submit(page, "form button[type=submit]")
            elif await page.locator(CONSENT_APPROVE).count():
                await _record(browser, page, visit, "consent")
                await _submit(page, CONSENT_APPROVE)
            else:
                await browser.screenshot(page, "unexpected-page")
                text = await page.inner_text("body")
                raise AssertionError(f"unexpected page at {page.url} (after {visit.kinds}):\n{text[:1500]}")
        raise AssertionError(f"the browser never reached {redirect_uri} (saw {visit.kinds}, now at {page.url})")
    finally:
        await page.close()


def _console_error(visit: BrowserVisit, page: Page, message: ConsoleMessage) -> None:
    if message.type != "error":
        return
    source = str(message.location.get("url") or "")
    if source.endswith("/favicon.ico"):
        return  # browsers ask every host for one; a 404 there is no fault of the page
    visit.console_errors.append(ConsoleError(page.url, message.text, source))


async def _record(browser: Browser, page: Page, visit: BrowserVisit, kind: str) -> None:
    await browser.screenshot(page, kind)
    visit.pages.append(PageSeen(kind, page.url, await page.inner_text("body")))


async def _submit(page: Page, button: str) -> None:
    """Click a submit button and wait until the redirects that follow it end on a loaded page."""
    async with page.expect_navigation(wait_until="load"):
        await page.click(button)


# --- the client's loopback redirect URI -------------------------------------------------------------------------


@dataclass
class LoopbackCallback:
    """``http://127.0.0.1:<port>/callback``: queues the query of each redirect it receives."""

    redirect_uri: str
    received: queue.Queue[dict[str, str]]

    async def wait(self) -> dict[str, str]:
        """The next redirect's query parameters (``code``, ``state``, ``iss`` or ``error``...)."""
        try:
            return await asyncio.to_thread(self.received.get, timeout=CALLBACK_WAIT_SECONDS)
        except queue.Empty:
            raise AssertionError(f"nothing arrived at {self.redirect_uri} within {CALLBACK_WAIT_SECONDS} s") from None


@contextmanager
def loopback_callback() -> Iterator[LoopbackCallback]:
    received: queue.Queue[dict[str, str]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            received.put({name: values[0] for name, values in parse_qs(parts.query).items()})
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(CLIENT_DONE_PAGE)))
            self.end_headers()
            self.wfile.write(CLIENT_DONE_PAGE)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LoopbackCallback(f"http://127.0.0.1:{server.server_address[1]}/callback", received)
    finally:
        server.shutdown()
        server.server_close()

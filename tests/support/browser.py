"""Headless Chromium for end-to-end tests: Debian's ``/usr/bin/chromium`` driven by Playwright's async API.

Playwright's own browser downloads are never used (no ``playwright install``). Each :func:`chromium` session gets a
fresh, throwaway profile, so no cookie or cache leaks from one test into another. Screenshots go to
``test-artifacts/<test name>/<NN>-<step>.png`` (the folder is gitignored): they are what a user of the gateway sees.

The async API is used because the MCP SDK's OAuth provider calls its redirect handler from inside its event loop;
the browser is launched in that same loop.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import BrowserContext, Page, async_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_ROOT = REPO_ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DEFAULT_TIMEOUT_MS = 20_000


def artifact_dir(test_name: str) -> Path:
    """``test-artifacts/<test name>/``, created empty (screenshots of an earlier run are removed)."""
    safe = re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", test_name)
    directory = ARTIFACTS_ROOT / safe
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    return directory


@dataclass
class Browser:
    """One Chromium profile; ``screenshots`` lists the files :meth:`screenshot` saved, in order."""

    context: BrowserContext
    artifacts: Path
    screenshots: list[Path] = field(default_factory=list)

    async def new_page(self) -> Page:
        page = await self.context.new_page()
        page.set_default_timeout(DEFAULT_TIMEOUT_MS)
        return page

    async def screenshot(self, page: Page, step: str) -> Path:
        """Save the whole page as ``<artifacts>/<NN>-<step>.png``, numbered in the order they were taken."""
        path = self.artifacts / f"{len(self.screenshots) + 1:02d}-{step}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.screenshots.append(path)
        return path


def _check_chromium() -> None:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium package (make test does)")


@asynccontextmanager
async def chromium(artifacts: Path) -> AsyncIterator[Browser]:
    """Launch headless Debian Chromium with a fresh profile; close it and delete the profile on exit."""
    _check_chromium()
    profile = tempfile.mkdtemp(prefix="e2e-chromium-")
    try:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": 1000, "height": 800},
                locale="en-US",
            )
            try:
                yield Browser(context, artifacts)
            finally:
                await context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)

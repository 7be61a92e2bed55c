"""Unit-test fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def main_thread_event_loop() -> Iterator[None]:
    """Give each test a current event loop, as the Lambda runtime's main thread has.

    Mangum drives the app with ``asyncio.get_event_loop().run_until_complete``; a test that ran ``asyncio.run``
    before leaves the main thread with no current loop, which would make a later handler call fail.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    loop.close()

"""A pytest plugin that moves the wall clock between collection and execution, to prove no test depends on it.

With ``GATEWAY_TEST_CLOCK_SHIFT_SECONDS=3600`` the whole run executes an hour "later" than collection: anything a
test module computed from ``time.time()`` or ``datetime.now()`` at import (an expiry, a "now") is an hour stale by
the time the test runs, exactly as on a slow machine where the suite takes longer than an expiry window. The clock
keeps ticking (``time.time()``, ``datetime.now()`` and friends, in every thread); ``time.monotonic()`` is not moved,
so durations and timeouts behave as usual.

Tests that share a clock with a process this one cannot shift (a Node fixture such as the OpenID provider, whose
tokens carry its own ``iat``/``exp``) are marked ``real_clock``: the shift is suspended while each of them runs.

Registered by ``tests/conftest.py`` (``pytest_plugins``); without the variable it does nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator

import pytest
import time_machine

ENV = "GATEWAY_TEST_CLOCK_SHIFT_SECONDS"
MARKER = "real_clock"

_state: dict[str, float] = {}
_traveller: list[time_machine.travel] = []


def shift_seconds() -> float:
    """The configured shift, 0 when the run is not shifted. A malformed value stops the run with a clear message."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        raise pytest.UsageError(f"{ENV} must be a number of seconds, not {raw!r}") from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test shares a clock with an unshifted process; {ENV} is suspended while it runs",
    )
    _state["shift"] = shift_seconds()


def pytest_report_header(config: pytest.Config) -> str | None:
    shift = _state.get("shift", 0.0)
    return f"clock shift: wall clock moved {shift:+.0f} s after collection ({ENV})" if shift else None


def _start() -> None:
    if _traveller:
        return
    # The destination is taken when the shift starts, so "later" is relative to the real time at that moment.
    traveller = time_machine.travel(time.time() + _state["shift"], tick=True)
    traveller.start()
    _traveller.append(traveller)


def _stop() -> None:
    if _traveller:
        _traveller.pop().stop()


def pytest_collection_finish(session: pytest.Session) -> None:
    if _state.get("shift"):
        _start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    suspend = bool(_state.get("shift")) and item.get_closest_marker(MARKER) is not None
    if suspend:
        _stop()
    try:
        yield
    finally:
        if suspend:
            _start()


def is_shifted() -> bool:
    """True while this process's wall clock runs shifted (for the plugin's own self-test)."""
    return bool(_traveller)

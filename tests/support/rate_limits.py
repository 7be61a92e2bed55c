"""Rate limits for gateways the tests start on the session's shared local AWS stack."""

from __future__ import annotations

from collections.abc import Mapping

GENEROUS = "100000"


def generous_rate_limits(env: Mapping[str, str]) -> dict[str, str]:
    """The limits of ``env`` that are on, raised far above what the tests send.

    Every test sends from one client address (127.0.0.1), and every gateway started on the session's local AWS stack
    counts in the same rate-limits table: with the deployed defaults, the sign-ins of earlier tests in the same
    minute would refuse a later test's. The counters are still kept (and exercised); the tests of the limits run a
    gateway of their own with the defaults. A limit that is off (``0``, like the proxy's per-caller limit) stays off."""
    return {name: GENEROUS for name, value in env.items() if name.startswith("GATEWAY_RATE_LIMIT_") and value != "0"}

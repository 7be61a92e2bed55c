"""Usage rollups: the MCP routes' calls counted as they happen, so the admin console's Overview reads a week of
latency percentiles from a few hundred small items instead of every audit event (``docs/storage.md``, "Usage
rollups").

Each proxied ``tools/call`` adds to two items (:class:`~gateway.storage.ports.UsageLog`, DynamoDB ``ADD``): its
tool's hour (calls, failures by origin, and two latency histograms, the gateway's own share and the upstream's) and
its caller's day (calls per hour of the (client, user) pair). The histograms have logarithmic buckets, each
:data:`GROWTH` times wider than the one before, so a percentile read from them is within about 9 % of the true one
from 0.1 ms to well past the longest call a route allows, with no bucket list to configure.

Like the audit trail, recording never fails the request it describes: a failed write is logged and counted.
The proxy records usage in the same place, and from the same facts, as the ``tool.called`` audit event
(``gateway/web/proxy/app.py``), so that whatever moves one off the request path moves both.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from gateway.mcp.outcome import AUTH_REQUIRED, INPUT_REQUIRED, OK
from gateway.storage.ports import StorageError, UsageLog
from gateway.storage.records import CallerRollup, ToolCall, ToolRollup

logger = logging.getLogger("gateway.usage")

GROWTH = 2 ** (1 / 4)  # each bucket ~19 % wider than the last: a percentile within ~9 % (half a bucket)
SMALLEST_MS = 0.1  # everything at or below lands in the first bucket
HOUR = 3600
DAY = 86400

ORIGIN_GATEWAY = "gateway"
ORIGIN_UPSTREAM = "upstream"
ORIGIN_AUTH = "auth"
ORIGINS = (ORIGIN_GATEWAY, ORIGIN_UPSTREAM, ORIGIN_AUTH)
UPSTREAM_STATUSES = frozenset({502, 504})  # the proxy's answers for an upstream that failed or timed out
AUTH_STATUSES = frozenset({401, 403})


def bucket(ms: float) -> int:
    """The histogram bucket of a latency: bucket ``i`` holds ``(SMALLEST_MS·GROWTH^(i-1), SMALLEST_MS·GROWTH^i]``."""
    if ms <= SMALLEST_MS:
        return 0
    return math.ceil(math.log(ms / SMALLEST_MS, GROWTH) - 1e-9)


def bucket_upper_ms(index: int) -> float:
    return SMALLEST_MS * GROWTH**index


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The ``fraction`` percentile (0.5 = p50) of the calls counted in ``histogram``: the geometric middle of the
    bucket it falls in (None for no calls)."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return SMALLEST_MS if index == 0 else bucket_upper_ms(index) / math.sqrt(GROWTH)
    return None  # unreachable: the ranks add up to the total


def failure_origin(outcome: str) -> str | None:
    """Where a call's failure came from, from its audit outcome (``gateway.mcp.outcome``): None for ``ok``;
    ``auth`` for a call refused for its credentials (401/403, an upstream account to connect: ``auth_required``);
    ``upstream`` for a tool's own error or an upstream that failed or timed out; ``gateway`` for the rest.
    ``input_required`` (MCP 2026-07-28) is no failure: the call has not run yet, its retry with the input is counted
    as a call of its own."""
    if outcome in (OK, INPUT_REQUIRED):
        return None
    if outcome == AUTH_REQUIRED:
        return ORIGIN_AUTH
    if outcome == "error":
        return ORIGIN_UPSTREAM
    status = int(outcome.removeprefix("http_")) if outcome.startswith("http_") and outcome[5:].isdigit() else 500
    if status in AUTH_STATUSES:
        return ORIGIN_AUTH
    if status in UPSTREAM_STATUSES:
        return ORIGIN_UPSTREAM
    return ORIGIN_GATEWAY


class UsageRecorder:
    """Counts calls into the usage rollups; a write that fails is logged and counted, never raised. Not ``enabled``
    (template ``UsageRollups=false``): counts nothing, writes nothing."""

    def __init__(self, log: UsageLog, retention_days: int, *, enabled: bool = True) -> None:
        self._log = log
        self._retention = retention_days * DAY
        self.enabled = enabled
        self.failures = 0

    def record(self, call: ToolCall) -> None:
        if not self.enabled:
            return
        gateway_ms = max(call.total_ms - call.upstream_ms, 0.0)
        try:
            self._log.add_call(
                call, bucket(gateway_ms), bucket(call.upstream_ms), failure_origin(call.outcome),
                call.at + self._retention,
            )  # fmt: skip
        except StorageError as problem:
            self.failures += 1
            logger.warning("usage of %s on %s not counted: %s", call.tool, call.route_key, problem)


# --- reading: what the Overview shows ----------------------------------------------------------------------------


@dataclass
class Figures:
    """Calls, failures and latency percentiles of some set of calls (a route, a tool, a window)."""

    calls: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ORIGINS, 0))
    gateway_histogram: dict[int, int] = field(default_factory=dict)
    upstream_histogram: dict[int, int] = field(default_factory=dict)

    def add(self, rollup: ToolRollup) -> None:
        self.calls += rollup.calls
        for origin, count in rollup.errors.items():
            self.errors[origin] = self.errors.get(origin, 0) + count
        for target, source in (
            (self.gateway_histogram, rollup.gateway_histogram),
            (self.upstream_histogram, rollup.upstream_histogram),
        ):
            for index, count in source.items():
                target[index] = target.get(index, 0) + count

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def latency(self, which: str, fraction: float) -> float | None:
        histogram = self.gateway_histogram if which == "gateway" else self.upstream_histogram
        return percentile(histogram, fraction)


@dataclass(frozen=True, slots=True)
class Ranked:
    """A client or user with its calls in a window."""

    id: str
    calls: int
    errors: int


def figures_by(rollups: Iterable[ToolRollup], key: Callable[[ToolRollup], str]) -> dict[str, Figures]:
    found: dict[str, Figures] = {}
    for rollup in rollups:
        found.setdefault(key(rollup), Figures()).add(rollup)
    return dict(sorted(found.items()))


def total(rollups: Iterable[ToolRollup]) -> Figures:
    figures = Figures()
    for rollup in rollups:
        figures.add(rollup)
    return figures


def most_active(
    callers: Iterable[CallerRollup], since: int, key: Callable[[CallerRollup], str], top: int = 10
) -> list[Ranked]:
    """The ``top`` clients or users (``key``) by calls since ``since`` (whole hours: the hour ``since`` falls in
    counts), most first."""
    calls: dict[str, int] = {}
    errors: dict[str, int] = {}
    first_hour = since // HOUR
    for caller in callers:
        counted = sum(n for hour, n in caller.hours.items() if caller.day * 24 + hour >= first_hour)
        if counted:
            calls[key(caller)] = calls.get(key(caller), 0) + counted
            failed = sum(n for hour, n in caller.error_hours.items() if caller.day * 24 + hour >= first_hour)
            errors[key(caller)] = errors.get(key(caller), 0) + failed
    ranked = sorted(calls.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [Ranked(name, count, errors.get(name, 0)) for name, count in ranked]

"""The usage rollups' arithmetic: latency buckets and the percentiles read from them, failure origins, the most
active callers of a window, and a recorder that never fails the call it counts."""

from __future__ import annotations

import pytest

from gateway.storage.ports import StorageError
from gateway.storage.records import CallerRollup, ToolCall
from gateway.usage import (
    GROWTH,
    UsageRecorder,
    bucket,
    bucket_upper_ms,
    failure_origin,
    most_active,
    percentile,
)


@pytest.mark.parametrize("ms", [0.05, 0.1, 0.7, 1.0, 12.3, 250.0, 999.9, 29_000.0])
def test_a_latency_lands_in_the_bucket_that_holds_it(ms: float) -> None:
    index = bucket(ms)
    assert ms <= bucket_upper_ms(index) * (1 + 1e-9)
    assert index == 0 or ms > bucket_upper_ms(index - 1)


def test_a_percentile_from_the_histogram_is_within_half_a_bucket_of_the_truth() -> None:
    latencies = [1.0 + n * 0.37 for n in range(1000)]
    histogram: dict[int, int] = {}
    for ms in latencies:
        histogram[bucket(ms)] = histogram.get(bucket(ms), 0) + 1
    for fraction in (0.5, 0.95):
        true = sorted(latencies)[int(fraction * len(latencies)) - 1]
        estimate = percentile(histogram, fraction)
        assert estimate is not None and abs(estimate - true) / true <= GROWTH**0.5 - 1 + 0.01
    assert percentile({}, 0.5) is None


@pytest.mark.parametrize(
    ("outcome", "origin"),
    [("ok", None), ("input_required", None), ("error", "upstream"), ("auth_required", "auth"), ("http_401", "auth"),
     ("http_403", "auth"), ("http_502", "upstream"), ("http_504", "upstream"), ("http_500", "gateway"),
     ("http_x", "gateway")],
)  # fmt: skip
def test_a_failure_has_an_origin(outcome: str, origin: str | None) -> None:
    assert failure_origin(outcome) == origin


def test_the_most_active_callers_count_only_the_hours_of_the_window() -> None:
    day = 20_000
    callers = [
        CallerRollup("ws", day, "c1", "ann", 10, 2, {0: 8, 23: 2}, 0, {0: 2}),
        CallerRollup("ws", day, "c2", "ben", 3, 0, {23: 3}, 0),
    ]
    last_hour = most_active(callers, (day * 24 + 23) * 3600, lambda c: c.client_id)
    assert [(r.id, r.calls, r.errors) for r in last_hour] == [("c2", 3, 0), ("c1", 2, 0)]
    whole_day = most_active(callers, day * 86400, lambda c: c.user_id)
    assert [(r.id, r.calls, r.errors) for r in whole_day] == [("ann", 10, 2), ("ben", 3, 0)]


class FailingLog:
    def add_call(self, *args: object) -> None:
        raise StorageError("throttled")

    def tool_rollups(self, *args: object, **kwargs: object) -> list[object]:
        return []

    def caller_rollups(self, *args: object, **kwargs: object) -> list[object]:
        return []

    def rollups(self, *args: object, **kwargs: object) -> tuple[list[object], list[object]]:
        return [], []


def test_a_failed_rollup_write_is_counted_never_raised() -> None:
    recorder = UsageRecorder(FailingLog(), 90)  # type: ignore[arg-type]
    recorder.record(ToolCall("ws", "ws/echo", "echo", "c", "u", 0, "ok", 1.0, 0.5))
    assert recorder.failures == 1


def test_rollups_turned_off_write_nothing() -> None:
    recorder = UsageRecorder(FailingLog(), 90, enabled=False)  # type: ignore[arg-type]
    recorder.record(ToolCall("ws", "ws/echo", "echo", "c", "u", 0, "ok", 1.0, 0.5))
    assert recorder.failures == 0  # the failing store was never asked

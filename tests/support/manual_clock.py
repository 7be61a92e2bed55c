"""A clock a test moves by hand (``clock.now += 3600``): the runtime's injectable clock in tests."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

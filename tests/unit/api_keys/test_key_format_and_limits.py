"""The key format (recognisable, parseable, hashed) and the rate limits' windows and failure mode."""

from __future__ import annotations

import logging

import pytest

from gateway.api_keys.key_format import PATTERN, looks_like_key, new_key, parse_key, secret_matches
from gateway.rate_limits import RateLimit, RateLimits
from gateway.storage.ports import StorageError
from infra.memory.stores import MemoryRateLimiter

NOW = 1_800_000_030  # 30 s into a minute


def test_a_new_key_is_recognisable_and_only_its_hash_is_kept() -> None:
    # Given two fresh keys
    first, second = new_key(), new_key()

    # Then each has the scanner-friendly shape, parses back to its id, and its secret matches only its own hash
    assert PATTERN.match(first.value) and looks_like_key(first.value)
    assert first.value != second.value and first.key_id != second.key_id
    parsed = parse_key(first.value)
    assert parsed is not None and parsed[0] == first.key_id
    assert secret_matches(parsed[1], first.secret_hash) and not secret_matches(parsed[1], second.secret_hash)
    assert parsed[1] not in first.secret_hash


@pytest.mark.parametrize("value", ["mcpgw_", "mcpgw_abc_def", "eyJhbGciOi.x.y", "mcpgw_" + "A" * 16 + "_" + "b" * 42])
def test_malformed_keys_do_not_parse(value: str) -> None:
    assert parse_key(value) is None


def test_a_limit_admits_its_number_per_window_and_says_when_to_retry() -> None:
    # Given a limit of 2 per minute
    now = [NOW]
    limits = RateLimits(MemoryRateLimiter(), clock=lambda: now[0])
    limit = RateLimit("register", 2)

    # When a subject asks three times within a minute
    verdicts = [limits.check(limit, "203.0.113.7") for _ in range(3)]

    # Then the third is refused until the window ends; another subject is independent
    assert [verdict.allowed for verdict in verdicts] == [True, True, False]
    assert verdicts[2].retry_after == 30
    assert limits.check(limit, "198.51.100.1").allowed
    # And the next window admits it again
    now[0] = NOW + 30
    assert limits.check(limit, "203.0.113.7").allowed
    # And 0 turns the limit off
    assert all(limits.check(RateLimit("register", 0), "203.0.113.7").allowed for _ in range(5))


class FailingLimiter:
    def take(self, bucket: str, limit: int, window_ends_at: int) -> bool:
        raise StorageError("DynamoDB write failed: ThrottlingException")


def test_a_failing_counter_store_lets_requests_through_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # Given a limits table that fails
    limits = RateLimits(FailingLimiter(), clock=lambda: NOW)

    # When a request is checked
    with caplog.at_level(logging.WARNING, logger="gateway.rate_limits"):
        verdict = limits.check(RateLimit("token-ip", 1), "203.0.113.7")

    # Then it is let through (fail open) and the failure is logged
    assert verdict.allowed
    assert "unavailable" in caplog.text

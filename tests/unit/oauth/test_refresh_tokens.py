"""Derived refresh tokens: ``<grant_id>.<generation>.<mac>``, authentic only for their grant's salt and generation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth import refresh_tokens
from gateway.oauth.errors import OAuthError

SECRET = b"0123456789abcdef0123456789abcdef"


def test_a_derived_token_parses_back_and_is_authentic() -> None:
    token = refresh_tokens.derive(SECRET, "g-1", "salt", 7)

    ref = refresh_tokens.parse(token)

    assert (ref.grant_id, ref.generation) == ("g-1", 7)
    assert refresh_tokens.is_authentic(SECRET, ref, "salt")


def test_derivation_is_deterministic_and_differs_per_generation_salt_and_secret() -> None:
    token = refresh_tokens.derive(SECRET, "g-1", "salt", 1)

    assert refresh_tokens.derive(SECRET, "g-1", "salt", 1) == token
    assert refresh_tokens.derive(SECRET, "g-1", "salt", 2) != token
    assert refresh_tokens.derive(SECRET, "g-1", "other", 1) != token
    assert refresh_tokens.derive(b"another secret", "g-1", "salt", 1) != token


@pytest.mark.parametrize(
    ("salt", "generation", "secret"),
    [("other-salt", 7, SECRET), ("salt", 6, SECRET), ("salt", 7, b"wrong secret")],
)
def test_a_token_is_not_authentic_for_another_salt_generation_or_secret(
    salt: str, generation: int, secret: bytes
) -> None:
    real = refresh_tokens.parse(refresh_tokens.derive(SECRET, "g-1", "salt", 7))
    claimed = refresh_tokens.RefreshTokenRef(real.grant_id, generation, real.mac)

    assert not refresh_tokens.is_authentic(secret, claimed, salt)


@pytest.mark.parametrize(
    "token",
    ["", "g.1", "g.1.short", "g.01." + "A" * 43, "g.-1." + "A" * 43, "g.x." + "A" * 43, "g.1." + "A" * 44,
     ".1." + "A" * 43, "g h.1." + "A" * 43, "g.12345678901." + "A" * 43],
)  # fmt: skip
def test_malformed_tokens_are_invalid_grant(token: str) -> None:
    with pytest.raises(OAuthError) as excinfo:
        refresh_tokens.parse(token)

    assert excinfo.value.error == "invalid_grant"
    assert refresh_tokens.try_parse(token) is None


@given(st.text(max_size=300))
def test_parse_never_raises_anything_but_invalid_grant(token: str) -> None:
    error = None
    try:
        refresh_tokens.parse(token)
    except OAuthError as problem:
        error = problem.error
    assert error in (None, "invalid_grant")


@given(st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True), st.integers(0, 10**9), st.text(max_size=30))
def test_round_trip(grant_id: str, generation: int, salt: str) -> None:
    ref = refresh_tokens.parse(refresh_tokens.derive(SECRET, grant_id, salt, generation))

    assert (ref.grant_id, ref.generation) == (grant_id, generation)
    assert refresh_tokens.is_authentic(SECRET, ref, salt)

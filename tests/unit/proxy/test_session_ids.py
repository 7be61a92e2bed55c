"""Session ids sealed to one user and one route (AES-GCM, HKDF key from the shared secret)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.proxy.session_ids import Session, SessionCodec, UnknownSession

CODEC = SessionCodec.from_shared_secret(b"unit-test-shared-secret")


def test_a_sealed_session_opens_for_its_user_and_route_with_its_flags() -> None:
    sealed = CODEC.seal(Session("abc-123", url_elicitation=True), route_key="demo/echo", user_id="alice")
    assert CODEC.open(sealed, route_key="demo/echo", user_id="alice") == Session("abc-123", url_elicitation=True)


@pytest.mark.parametrize(("route_key", "user_id"), [("demo/echo", "bob"), ("demo/other", "alice"), ("demo/echoa", "")])
def test_it_does_not_open_for_anyone_else(route_key: str, user_id: str) -> None:
    sealed = CODEC.seal(Session("abc"), route_key="demo/echo", user_id="alice")
    with pytest.raises(UnknownSession):
        CODEC.open(sealed, route_key=route_key, user_id=user_id)


def test_another_deployments_secret_cannot_open_it() -> None:
    sealed = CODEC.seal(Session("abc"), route_key="demo/echo", user_id="alice")
    with pytest.raises(UnknownSession):
        SessionCodec.from_shared_secret(b"another secret").open(sealed, route_key="demo/echo", user_id="alice")


def test_the_shared_secret_is_read_when_a_session_is_first_sealed_or_opened() -> None:
    # Given a codec that reads the shared secret on demand
    reads: list[int] = []

    def read_secret() -> bytes:
        reads.append(1)
        return b"unit-test-shared-secret"

    codec = SessionCodec.from_shared_secret(read_secret)
    assert reads == []  # not when it is built
    # When it seals and opens session ids, Then the secret was read once, and the ids are the eager codec's
    sealed = codec.seal(Session("abc"), route_key="demo/echo", user_id="alice")
    assert codec.open(sealed, route_key="demo/echo", user_id="alice") == Session("abc")
    assert CODEC.open(sealed, route_key="demo/echo", user_id="alice") == Session("abc")
    assert reads == [1]


@pytest.mark.parametrize("garbage", ["", "g1.", "g1.!!!!", "abc", "g1." + "A" * 40, "g1." + "A" * 2000])
def test_garbage_is_unknown(garbage: str) -> None:
    with pytest.raises(UnknownSession):
        CODEC.open(garbage, route_key="demo/echo", user_id="alice")


@given(upstream_id=st.text(min_size=1, max_size=200), position=st.integers(min_value=3))
def test_any_altered_character_makes_it_unknown(upstream_id: str, position: int) -> None:
    sealed = CODEC.seal(Session(upstream_id), route_key="demo/echo", user_id="alice")
    index = 3 + position % (len(sealed) - 3)
    replacement = "A" if sealed[index] != "A" else "B"
    altered = sealed[:index] + replacement + sealed[index + 1 :]
    try:
        opened = CODEC.open(altered, route_key="demo/echo", user_id="alice")
    except UnknownSession:
        return
    # base64 padding bits: the last character may change without changing the bytes
    assert opened.upstream_session_id == upstream_id


@given(upstream_id=st.text(min_size=1, max_size=300))
def test_it_is_visible_ascii_and_differs_every_time(upstream_id: str) -> None:
    first = CODEC.seal(Session(upstream_id), route_key="demo/echo", user_id="alice")
    second = CODEC.seal(Session(upstream_id), route_key="demo/echo", user_id="alice")
    assert all(0x21 <= ord(char) <= 0x7E for char in first)  # MCP §Session Management
    assert first != second
    assert CODEC.open(first, route_key="demo/echo", user_id="alice").upstream_session_id == upstream_id


def test_a_session_id_opens_within_its_lifetime_only() -> None:
    # Given a codec whose ids live an hour, on a clock the test moves
    now = [1_800_000_000.0]
    codec = SessionCodec.from_shared_secret(b"unit-test-shared-secret", clock=lambda: now[0], max_age_seconds=3600)
    sealed = codec.seal(Session("abc"), route_key="demo/echo", user_id="alice")

    # When it is presented at the end of its lifetime, and a second later
    now[0] += 3600
    assert codec.open(sealed, route_key="demo/echo", user_id="alice") == Session("abc")
    now[0] += 1

    # Then it is unknown, as any id the gateway did not issue (the client initializes again)
    with pytest.raises(UnknownSession):
        codec.open(sealed, route_key="demo/echo", user_id="alice")


def test_a_session_id_from_the_future_is_unknown() -> None:
    now = [1_800_000_000.0]
    codec = SessionCodec.from_shared_secret(b"unit-test-shared-secret", clock=lambda: now[0])
    sealed = codec.seal(Session("abc"), route_key="demo/echo", user_id="alice")
    now[0] -= 3600  # sealed an hour "later" than now: a clock far ahead, or a forgery
    with pytest.raises(UnknownSession):
        codec.open(sealed, route_key="demo/echo", user_id="alice")

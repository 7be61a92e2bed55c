"""The JSON parser for input from outside: any input parses or raises JsonInputError (a ValueError), never
RecursionError or anything else, and what it accepts it decodes exactly as json.loads does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import safe_json
from gateway.safe_json import MAX_DEPTH, JsonInputError, JsonTooDeep, too_deep
from tests.support.hostile_json import HOSTILE_BODIES


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_hostile_nesting_is_refused_as_too_deep(name: str) -> None:
    with pytest.raises(JsonTooDeep, match=f"deeper than {MAX_DEPTH}"):
        safe_json.loads(HOSTILE_BODIES[name])
    with pytest.raises(JsonTooDeep):
        safe_json.loads(HOSTILE_BODIES[name].decode())


def test_the_limit_is_exactly_max_depth() -> None:
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert safe_json.loads(at_limit) is not None
    with pytest.raises(JsonTooDeep):
        safe_json.loads("[" + at_limit + "]")
    mixed = '{"a":' * (MAX_DEPTH // 2) + "[" * (MAX_DEPTH // 2) + "1" + "]" * (MAX_DEPTH // 2) + "}" * (MAX_DEPTH // 2)
    assert safe_json.loads(mixed) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"text": "[" * 10_000, "quote": '\\"[[[', "more": "{" * 5000})
    assert safe_json.loads(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("NaN", "not a JSON value"),
        ("[Infinity]", "not a JSON value"),
        ('{"a": -Infinity}', "not a JSON value"),
        ("[1e999999]", "too large"),
        ("1" * 5000, "too many digits"),
        ('"\\ud800"', "unpaired surrogate"),
        ('{"\\udc00": 1}', "unpaired surrogate"),
        ("{", "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_values_that_are_not_json_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(JsonInputError, match=reason):
        safe_json.loads(text)


def test_bytes_must_be_utf8_and_may_start_with_a_bom() -> None:
    assert safe_json.loads(b"\xef\xbb\xbf[1]") == [1]
    assert safe_json.loads('"\\ud83d\\ude00"') == "\U0001f600"  # a valid surrogate pair is one character
    with pytest.raises(JsonInputError, match="not UTF-8"):
        safe_json.loads(b'"\xff"')
    with pytest.raises(JsonInputError, match="not UTF-8"):
        safe_json.loads('"x"'.encode("utf-16"))


def test_the_errors_are_value_errors_so_existing_handlers_catch_them() -> None:
    assert issubclass(JsonTooDeep, JsonInputError)
    assert issubclass(JsonInputError, ValueError)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_what_json_dumps_writes_reads_back_unchanged(value: Any) -> None:
    text = json.dumps(value)
    if _depth(value) > MAX_DEPTH:
        with pytest.raises(JsonTooDeep):
            safe_json.loads(text)
    else:
        assert safe_json.loads(text) == json.loads(text)
        assert safe_json.loads(text.encode()) == json.loads(text)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=3 * MAX_DEPTH), st.sampled_from(["[", '{"k":']))
def test_the_depth_scan_agrees_with_the_real_depth(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "0" + closer * depth
    assert too_deep(text) == (depth > MAX_DEPTH)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(alphabet='[]{}"\\:,0123456789eE+-.tnuflasr \ud800', max_size=300))
def test_any_input_parses_or_raises_json_input_error(data: bytes | str) -> None:
    reason = ""
    try:
        value = safe_json.loads(data)
    except JsonInputError as refused:
        reason = str(refused) or "(no reason)"
    if not reason:
        assert json.loads(data) == value  # what it accepts, it decodes as the standard library does
    assert reason != "(no reason)"  # a refusal says why, in words fit for the sender

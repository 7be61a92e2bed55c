"""MCP 2026-07-28 header values: the Base64 sentinel form, and routing headers computed from a body."""

from __future__ import annotations

import pytest

from gateway.mcp.stateless import decode_value, encode_value, header_mismatch, routing_headers


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("us-west1", "us-west1"),
        ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        (" padded ", "=?base64?IHBhZGRlZCA=?="),
        ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
        ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
    ],
)
def test_values_are_encoded_as_the_revision_shows(value: str, encoded: str) -> None:
    # The examples of MCP 2026-07-28 §Streamable HTTP "Value Encoding"
    assert encode_value(value) == encoded
    assert decode_value(encoded) == value


def test_routing_headers_never_carry_what_cannot_be_a_header_value() -> None:
    headers = routing_headers({"jsonrpc": "2.0", "method": "tools/\u0100", "params": {}})
    assert all(value.isascii() and "\n" not in value for value in headers.values())
    call = {"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///a b"}}
    assert routing_headers(call) == {"mcp-method": "resources/read", "mcp-name": "file:///a b"}


def test_headers_must_be_there_agree_and_name_nothing_they_should_not() -> None:
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert header_mismatch(listing, {"mcp-method": "tools/list"}) is None
    assert header_mismatch(listing, {"mcp-method": " tools/list\t"}) is None  # RFC 9110 §5.5 optional whitespace
    assert header_mismatch(listing, {}) is not None  # Mcp-Method is required of every request
    assert header_mismatch(listing, {"mcp-method": "tools/list", "mcp-name": "echo"}) is not None  # names nothing
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}}
    assert header_mismatch(call, {"mcp-method": "tools/call"}) is not None  # Mcp-Name is required here
    assert header_mismatch(call, {"mcp-method": "tools/call", "mcp-name": "=?base64?ZWNobw==?="}) is None

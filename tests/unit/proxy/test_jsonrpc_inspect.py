"""What the proxy reads from a request body: request ids, the method, and URL-elicitation support."""

from __future__ import annotations

import json

import pytest

from gateway.proxy.jsonrpc import error_body, inspect, is_error_response


def body(message: object) -> bytes:
    return json.dumps(message).encode()


def test_a_request_a_notification_and_a_response() -> None:
    assert inspect(body({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).request_ids == (1,)
    notification = inspect(body({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    assert notification.request_ids == () and not notification.expects_response
    assert not inspect(body({"jsonrpc": "2.0", "id": 1, "result": {}})).expects_response


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b"[1]", b'{"id": null, "method": "x"}', b'{"id": true, "method": "x"}']
)
def test_bodies_it_cannot_read_are_forwarded_as_expecting_an_answer(raw: bytes) -> None:
    inbound = inspect(raw)
    assert not inbound.parsed and inbound.expects_response


@pytest.mark.parametrize(
    ("capabilities", "declared"),
    [
        ({"elicitation": {"url": {}}}, True),
        ({"elicitation": {}}, False),
        ({"elicitation": {"form": {}}}, False),
        ({}, False),
    ],
)
def test_initialize_declares_url_elicitation_only_with_elicitation_url(
    capabilities: dict[str, object], declared: bool
) -> None:
    message = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"capabilities": capabilities}}
    inbound = inspect(body(message))
    assert inbound.is_initialize and inbound.declares_url_elicitation is declared


def test_a_2026_request_declares_capabilities_in_its_meta() -> None:
    meta: dict[str, object] = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}}}
    message = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x", "_meta": meta}}
    assert inspect(body(message)).declares_url_elicitation is True
    plain = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x"}}
    assert inspect(body(plain)).declares_url_elicitation is None


def test_errors_answer_each_request_of_a_batch() -> None:
    batch = inspect(body([{"jsonrpc": "2.0", "id": 1, "method": "a"}, {"jsonrpc": "2.0", "id": "b", "method": "c"}]))
    answers = json.loads(error_body(batch, -32603, "m"))
    assert [answer["id"] for answer in answers] == [1, "b"]
    assert json.loads(error_body(inspect(b"{"), -32603, "m"))["id"] is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}', True),
        (b'[{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}]', True),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', False),
        (b'{"detail":"Not Found"}', False),
        (b'{"error":"not found"}', False),
        (b"<html>Not Found</html>", False),
        (b"", False),
        (b"[]", False),
    ],
)
def test_a_json_rpc_error_response_is_recognised(raw: bytes, expected: bool) -> None:
    assert is_error_response(raw) is expected


def test_a_single_tools_call_names_its_tool_for_the_audit_trail() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    assert inspect(json.dumps(call).encode()).tool == "echo"
    assert inspect(json.dumps([call]).encode()).tool is None  # a batch: no single tool
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"name": "echo"}}
    assert inspect(json.dumps(listing).encode()).tool is None
    nameless = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 3}}
    assert inspect(json.dumps(nameless).encode()).tool is None

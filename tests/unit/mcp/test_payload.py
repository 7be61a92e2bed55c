"""The one parse of a client's body: request ids, the method, tool calls, URL-elicitation support, refusals, and the
bytes that go upstream."""

from __future__ import annotations

import json

import pytest

from gateway.mcp.jsonrpc import is_error_response
from gateway.mcp.payload import parse_client_body, payload_of
from gateway.proxy.answer import error_answer


def body(message: object) -> bytes:
    return json.dumps(message).encode()


def test_a_request_a_notification_and_a_response() -> None:

    request = parse_client_body(body({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}), protocol_version=None)
    assert request.request_ids == (1,) and request.refusal is None
    notification = parse_client_body(body({"jsonrpc": "2.0", "method": "notifications/x"}), protocol_version=None)
    assert notification.request_ids == () and not notification.expects_response
    response = parse_client_body(body({"jsonrpc": "2.0", "id": 1, "result": {}}), protocol_version=None)
    assert response.refusal is None and not response.expects_response


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", -32700),
        (b"{", -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"n":NaN}}', -32700),
        (b"[]", -32600),
        (b"[1]", -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"x"}', -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"x"}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":3}', -32600),
        (b'{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', -32600),
    ],
)
def test_bodies_it_cannot_read_are_refused_with_400(raw: bytes, code: int) -> None:
    refusal = parse_client_body(raw, protocol_version=None).refusal
    assert refusal is not None and refusal.status == 400 and refusal.code == code


def test_what_goes_upstream_is_serialized_from_the_parse() -> None:
    raw = b'{ "jsonrpc" : "2.0", "id" : 1, "method" : "x", "params" : {"a": 1, "a": 2, "t": "\\u00e9"} }'
    payload = parse_client_body(raw, protocol_version=None)
    assert payload.body == '{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":2,"t":"é"}}'.encode()


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
    payload = parse_client_body(body(message), protocol_version=None)
    assert payload.is_initialize and payload.declares_url_elicitation is declared


def test_a_2026_request_declares_capabilities_in_its_meta() -> None:
    meta: dict[str, object] = {"io.modelcontextprotocol/clientCapabilities": {"elicitation": {"url": {}}}}
    message = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x", "_meta": meta}}
    assert parse_client_body(body(message), protocol_version=None).declares_url_elicitation is True
    plain = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x"}}
    assert parse_client_body(body(plain), protocol_version=None).declares_url_elicitation is None


def test_errors_answer_each_request_of_a_batch() -> None:
    batch: list[dict[str, object]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "a"},
        {"jsonrpc": "2.0", "id": "b", "method": "c"},
    ]
    answers = json.loads(error_answer(400, payload_of(batch), -32603, "m").body)
    assert [answer["id"] for answer in answers] == [1, "b"]
    assert json.loads(error_answer(400, parse_client_body(b"{", protocol_version=None), -32603, "m").body)["id"] is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}', True),
        (b'[{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"x"}}]', True),
        (b'{"jsonrpc":"2.0","id":1,"result":{}}', False),
        (b'{"detail":"Not Found"}', False),
        (b'{"error":"not found"}', False),
        (b"[]", False),
    ],
)
def test_a_json_rpc_error_response_is_recognised(raw: bytes, expected: bool) -> None:
    assert is_error_response(json.loads(raw)) is expected


def test_tool_calls_are_named_for_the_audit_trail() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    single = parse_client_body(body(call), protocol_version=None)
    assert single.tool == "echo" and [c.name for c in single.tool_calls] == ["echo"]
    second = {**call, "id": 2, "params": {"name": "other"}}
    batch = parse_client_body(body([call, second]), protocol_version=None)
    assert batch.tool is None  # a batch: no single tool for the metrics, but every call for the audit
    assert [(c.request_id, c.name) for c in batch.tool_calls] == [(1, "echo"), (2, "other")]
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"name": "echo"}}
    assert parse_client_body(body(listing), protocol_version=None).tool_calls == ()


def test_a_call_without_a_tool_name_is_answered_as_bad_params() -> None:
    nameless = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 3}}
    refusal = parse_client_body(body(nameless), protocol_version=None).refusal
    assert refusal is not None and (refusal.status, refusal.code, refusal.request_id) == (200, -32602, 1)
    stateless = parse_client_body(body(nameless), protocol_version="2026-07-28").refusal
    assert stateless is not None and stateless.status == 400  # MCP 2026-07-28: the code decides the status


@pytest.mark.parametrize(("version", "allowed"), [(None, True), ("2025-03-26", True), ("2025-06-18", False)])
def test_batches_exist_in_2025_03_26_only(version: str | None, allowed: bool) -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "method": "notifications/x"}]
    refusal = parse_client_body(body(batch), protocol_version=version).refusal
    assert (refusal is None) is allowed


def test_requests_of_a_batch_need_distinct_ids() -> None:
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "ping"}, {"jsonrpc": "2.0", "id": 1, "method": "ping"}]
    refusal = parse_client_body(body(batch), protocol_version=None).refusal
    assert refusal is not None and refusal.code == -32600

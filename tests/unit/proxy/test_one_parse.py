"""One parse decides and forwards: through the real proxy app (Starlette TestClient) to a scripted upstream on
127.0.0.1, a body the gateway cannot read is refused and forwarded nowhere; what the upstream receives is serialized
from the parse every decision read (a key's tool scope, the audit trail); JSON-RPC batches follow the negotiated
revision; a 2026-07-28 request's routing headers agree with its body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.api_keys.issuing import KeyRequest, create_key
from gateway.config import parse_config
from gateway.runtime import Runtime
from gateway.web.proxy.app import create_app
from infra.placeholders import grant_backed_token
from tests.support.runtime import example_config_data, memory_runtime
from tests.unit.proxy.scripted_upstream import ScriptedUpstream, scripted_upstream

MCP = "/demo/echo/mcp"
ACCEPT = "application/json, text/event-stream"


def call(tool: str, request_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


@pytest.fixture
def upstream() -> Iterator[ScriptedUpstream]:
    with scripted_upstream() as running:
        yield running


class Gateway:
    def __init__(self, upstream: ScriptedUpstream) -> None:
        data = example_config_data()
        data["workspaces"]["demo"]["servers"]["echo"]["upstream"] = upstream.url
        self.runtime: Runtime = memory_runtime(parse_config(data))
        self.client = TestClient(create_app(self.runtime))
        route = self.runtime.routes.get("demo", "echo")
        assert route is not None
        self.token = grant_backed_token(self.runtime, route, subject="alice")

    def key(self, tools: tuple[str, ...]) -> str:
        request = KeyRequest(workspace="demo", user_id="alice", name="ci", servers=("echo",), tools=tools)
        runtime = self.runtime
        _, value = create_key(runtime.api_keys, runtime.audit, runtime.config, request, runtime.now())
        return value

    def post(self, body: bytes, *, key: str | None = None, **headers: str) -> Any:
        sent = {"Accept": ACCEPT, "Content-Type": "application/json", **headers}
        sent["Authorization"] = f"Bearer {key or self.token}"
        return self.client.post(MCP, content=body, headers=sent)

    def tool_events(self) -> list[tuple[Any, Any]]:
        now = self.runtime.now()
        events = self.runtime.audit_log.events("demo", since=now - 60, until=now + 60)
        return [(e.detail.get("tool"), e.detail.get("outcome")) for e in events if e.kind == "tool.called"]


@pytest.fixture
def gateway(upstream: ScriptedUpstream) -> Gateway:
    return Gateway(upstream)


# --- item 1: a body the gateway cannot parse is never forwarded ---------------------------------------------------

SMUGGLED = b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other_tool","arguments":{}},"pad":%s}'


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (SMUGGLED % b"NaN", -32700),
        (SMUGGLED % b"Infinity", -32700),
        (SMUGGLED % b"-Infinity", -32700),
        (SMUGGLED % b"1e400", -32700),
        (SMUGGLED % b'"\\ud800"', -32700),  # a lone surrogate
        (SMUGGLED % b'"\xff"', -32700),  # not UTF-8
        (b"", -32700),
        (b"{", -32700),
        (b"[]", -32600),
        (b"[1]", -32600),
        (b"7", -32600),
        (b'{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"other_tool"}}', -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"other_tool"}}', -32600),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"tools/call","params":{"name":"other_tool"}}', -32600),
        (b'{"id":7,"method":"tools/call","params":{"name":"other_tool"}}', -32600),  # no "jsonrpc"
        (b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":["other_tool"]}', -32600),
        (b'{"jsonrpc":"2.0","id":7}', -32600),  # neither a request nor a response
    ],
)
def test_a_body_the_gateway_cannot_read_is_refused_and_forwarded_nowhere(
    gateway: Gateway, upstream: ScriptedUpstream, body: bytes, code: int
) -> None:
    # Given a key that may call only `allowed`, and a signed-in user
    key = gateway.key(("allowed",))

    # When each sends a body the gateway's parser refuses (an official-SDK upstream would accept several of them)
    answers = [gateway.post(body, key=key), gateway.post(body)]

    # Then both get 400 with a JSON-RPC error, the upstream saw nothing, and nothing went unaudited
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == code
    assert upstream.seen == []
    assert gateway.tool_events() == []


def test_what_the_upstream_receives_is_the_parse_the_tool_scope_read(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    # Given a key that may call only `allowed`, and a body naming two tools: parsers disagree on duplicate keys
    key = gateway.key(("allowed",))
    body = (
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"other_tool","arguments":{}},'
        b'"params":{"name":"allowed","arguments":{}}}'
    )

    # When it is relayed
    answer = gateway.post(body, key=key)

    # Then the upstream received the call the scope check allowed, and only that: the parse, serialized again
    assert answer.status_code == 200
    [seen] = upstream.seen
    assert b"other_tool" not in seen.body
    assert json.loads(seen.body)["params"] == {"name": "allowed", "arguments": {}}
    assert gateway.tool_events() == [("allowed", "ok")]


# --- item 2: batches follow the negotiated revision ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25", "2026-07-28"])
def test_a_batch_is_refused_where_the_revision_has_none(
    gateway: Gateway, upstream: ScriptedUpstream, version: str
) -> None:
    batch = json.dumps([call("echo", 1), call("other", 2)]).encode()

    answer = gateway.post(batch, **{"MCP-Protocol-Version": version})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32600 and answer.json()["id"] is None
    assert upstream.seen == []
    assert gateway.tool_events() == []


def test_initialize_is_never_part_of_a_batch(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-03-26"}}
    answer = gateway.post(json.dumps([initialize, call("echo", 2)]).encode())
    assert answer.status_code == 400 and answer.json()["error"]["code"] == -32600
    assert upstream.seen == []


@pytest.mark.parametrize("header", [None, "2025-03-26"])
def test_every_call_of_a_2025_03_26_batch_is_audited_with_its_own_outcome(
    gateway: Gateway, upstream: ScriptedUpstream, header: str | None
) -> None:
    # Given an upstream that fails the tool `broken` and runs the others
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    async def answer(request: Request, body: bytes) -> Response:
        results = []
        for message in json.loads(body):
            failed = message["params"]["name"] == "broken"
            results.append({"jsonrpc": "2.0", "id": message["id"], "result": {"content": [], "isError": failed}})
        return JSONResponse(results)

    upstream.answer = answer
    headers = {} if header is None else {"MCP-Protocol-Version": header}

    # When a 2025-03-26 client sends a batch of three calls
    batch = json.dumps([call("echo", 1), call("broken", 2), call("echo", 3)]).encode()
    response = gateway.post(batch, **headers)

    # Then it is relayed, and each call is in the audit trail with its own outcome
    assert response.status_code == 200
    assert [item["id"] for item in response.json()] == [1, 2, 3]
    assert sorted(gateway.tool_events()) == [("broken", "error"), ("echo", "ok"), ("echo", "ok")]


def test_a_scoped_key_is_refused_for_any_call_of_a_batch_outside_its_tools(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    key = gateway.key(("echo",))
    answer = gateway.post(json.dumps([call("echo", 1), call("other", 2)]).encode(), key=key)
    assert [item["error"]["code"] for item in answer.json()] == [-32602, -32602]
    assert upstream.seen == []


# --- item 16: 2026-07-28 routing headers agree with the body -------------------------------------------------------


def modern_call(name: str, version: str = "2026-07-28") -> bytes:
    meta = {"io.modelcontextprotocol/protocolVersion": version, "io.modelcontextprotocol/clientCapabilities": {}}
    message = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": name, "_meta": meta}}
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("headers", "meta_version"),
    [
        ({"Mcp-Method": "tools/call", "Mcp-Name": "harmless"}, "2026-07-28"),  # routed on one name, run on another
        ({"Mcp-Method": "tools/list", "Mcp-Name": "delete_everything"}, "2026-07-28"),
        ({"Mcp-Method": "tools/call", "Mcp-Name": "=?base64?aGFybWxlc3M=?="}, "2026-07-28"),  # "harmless", encoded
        ({"Mcp-Method": "tools/call", "Mcp-Name": "delete_everything"}, "2025-11-25"),  # the version differs
        ({"Mcp-Method": "tools/call"}, "2026-07-28"),  # no Mcp-Name: what does a router in front route on?
        ({"Mcp-Name": "delete_everything"}, "2026-07-28"),  # no Mcp-Method
    ],
)
def test_routing_headers_that_disagree_with_the_body_are_refused(
    gateway: Gateway, upstream: ScriptedUpstream, headers: dict[str, str], meta_version: str
) -> None:
    answer = gateway.post(
        modern_call("delete_everything", meta_version), **{"MCP-Protocol-Version": "2026-07-28", **headers}
    )

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == -32020 and answer.json()["id"] == 3
    assert upstream.seen == []


def test_the_upstream_gets_routing_headers_computed_from_the_body(gateway: Gateway, upstream: ScriptedUpstream) -> None:
    # Given 2026-07-28 requests whose headers agree with the body, in any of the forms a client may send
    version = {"MCP-Protocol-Version": "2026-07-28"}
    encoded = {**version, "Mcp-Method": "tools/call", "Mcp-Name": "=?base64?ZWNobw==?="}
    padded = {**version, "Mcp-Method": "tools/call", "Mcp-Name": "  echo "}  # RFC 9110 §5.5: OWS is not the value
    odd = {**version, "Mcp-Method": "tools/call", "Mcp-Name": "=?base64?w6ljaG8gdG9vbA==?="}

    # When they are relayed
    for headers, name in ((encoded, "echo"), (padded, "echo"), (odd, "écho tool")):
        assert gateway.post(modern_call(name), **headers).status_code == 200

    # Then the upstream saw the headers of the body it received, in their canonical form
    seen = [(s.headers.get("mcp-method"), s.headers.get("mcp-name")) for s in upstream.seen]
    assert seen == [("tools/call", "echo"), ("tools/call", "echo"), ("tools/call", "=?base64?w6ljaG8gdG9vbA==?=")]


def test_session_era_requests_carry_no_routing_headers_of_the_clients(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    headers = {"MCP-Protocol-Version": "2025-11-25", "Mcp-Method": "tools/list", "Mcp-Name": "something"}
    assert gateway.post(json.dumps(call("echo")).encode(), **headers).status_code == 200
    assert "mcp-method" not in upstream.last.headers and "mcp-name" not in upstream.last.headers


# --- issue 22: the client body is parsed once, and nothing the gateway produced is parsed again ------------------


def record_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every input of the gateway's JSON parser from now on (as UTF-8 bytes)."""
    from gateway import safe_json

    parsed: list[bytes] = []
    real = safe_json.loads

    def loads(data: bytes | str, max_depth: int = safe_json.MAX_DEPTH) -> Any:
        parsed.append(data.encode() if isinstance(data, str) else bytes(data))
        return real(data, max_depth)

    monkeypatch.setattr(safe_json, "loads", loads)
    return parsed


@pytest.mark.parametrize("caller", ["token", "tool-scoped key"])
def test_a_proxied_tools_call_parses_the_client_body_once(
    gateway: Gateway, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch, caller: str
) -> None:
    key = gateway.key(("echo",)) if caller != "token" else None
    parsed = record_parses(monkeypatch)
    body = json.dumps(call("echo")).encode()

    answer = gateway.post(body, key=key)

    # The client's body once; the upstream's answer once (for the audit trail); the bytes the gateway sent never
    assert answer.status_code == 200
    assert parsed.count(body) == 1
    assert parsed.count(answer.content) == 1
    assert upstream.last.body not in parsed
    assert len(parsed) == 2


def test_the_upstream_is_told_the_type_of_the_bytes_the_gateway_serialized(
    gateway: Gateway, upstream: ScriptedUpstream
) -> None:
    body = json.dumps(call("echo")).encode()
    assert gateway.post(body, **{"Content-Type": "application/json; charset=utf-16"}).status_code == 200
    assert upstream.last.headers["content-type"] == "application/json"


def test_a_caller_turned_away_at_the_door_costs_no_parse(
    gateway: Gateway, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed = record_parses(monkeypatch)
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    for authorization in (None, "Bearer not-a-token"):
        sent = headers if authorization is None else {**headers, "Authorization": authorization}
        assert gateway.client.post(MCP, content=b"[" * 100_000, headers=sent).status_code == 401
    assert parsed == []

"""The JSON-RPC payload of one POST: its messages, the bytes that carry them, and what the gateway reads of them.

**One parse decides and forwards** (docs/architecture.md). A client's body is parsed once, by
:func:`parse_client_body`; every decision taken on it (a key's tool scope, virtual routing and filters, the audit
trail, the metrics) reads the resulting :class:`Payload`, and the bytes sent upstream are that payload's
:attr:`Payload.body`, serialized from the same parse. A body the gateway cannot parse, or whose messages it cannot
read as MCP requests, notifications or responses, is refused (HTTP 400 with ``-32700`` or ``-32600``) and nothing is
forwarded: an upstream must never act on a message the gateway did not understand (a ``NaN`` it would accept, a
duplicate key it would read the other way).

Messages the gateway builds itself (a virtual route's calls upstream) become a payload with :func:`payload_of`,
without any parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import safe_json
from gateway.mcp.codes import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR
from gateway.mcp.jsonrpc import Message, RequestId, dumps, error_response
from gateway.mcp.revisions import CLIENT_CAPABILITIES_META, allows_batches, is_stateless

MAX_AUDITED_NAME = 200  # a tool name as the audit trail and the metrics keep it


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the gateway answers a body itself instead of forwarding it: the HTTP status and the JSON-RPC error."""

    status: int
    code: int
    message: str
    request_id: RequestId | None = None

    def response(self) -> Message:
        return error_response(self.request_id, self.code, self.message)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A ``tools/call`` of the payload: its request id (None for one sent as a notification) and the tool's name."""

    request_id: RequestId | None
    name: str

    @property
    def audited_name(self) -> str:
        return self.name[:MAX_AUDITED_NAME]


@dataclass(frozen=True, slots=True)
class Payload:
    """The message(s) of one POST. ``request_ids`` is empty for notifications and responses (answered 202)."""

    messages: tuple[Message, ...] = ()
    batch: bool = False
    body: bytes = b""
    """The bytes that carry ``messages`` upstream (serialized from them, never the client's own bytes)."""
    request_ids: tuple[RequestId, ...] = ()
    method: str | None = None
    """The first message's method (a request or notification), for the metrics and the session rules."""
    declares_url_elicitation: bool | None = None
    """None: the first message does not say (not ``initialize``, no capabilities in its ``_meta``)."""
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: Refusal | None = None

    @property
    def is_initialize(self) -> bool:
        return self.method == "initialize"

    @property
    def expects_response(self) -> bool:
        return bool(self.request_ids)

    @property
    def tool(self) -> str | None:
        """The tool a single ``tools/call`` names (for the metrics)."""
        return self.tool_calls[0].audited_name if self.tool_calls and not self.batch else None


NO_PAYLOAD = Payload()
"""The payload of a request that carries no message (GET, DELETE)."""


def refused(code: int, message: str, request_id: RequestId | None = None) -> Payload:
    return Payload(refusal=Refusal(400, code, message, request_id))


def parse_client_body(body: bytes, *, protocol_version: str | None) -> Payload:
    """The one parse of a client's POST body. ``protocol_version`` is the request's ``MCP-Protocol-Version`` header
    (None when absent), which decides whether a batch is allowed."""
    try:
        decoded = safe_json.loads(body)
    except safe_json.JsonInputError as unreadable:
        return refused(PARSE_ERROR, f"Parse error: {unreadable}")
    batch = isinstance(decoded, list)
    items: list[Any] = decoded if batch else [decoded]
    if batch:
        # JSON-RPC 2.0 §6; MCP 2025-03-26 §Streamable HTTP "Sending Messages" is the only revision with batches.
        if not allows_batches(protocol_version):
            return refused(INVALID_REQUEST, f"Invalid Request: MCP {protocol_version} has no JSON-RPC batches")
        if not items:
            return refused(INVALID_REQUEST, "Invalid Request: an empty batch")
    for item in items:
        problem = _message_problem(item, in_batch=batch)
        if problem is not None:
            request_id = _usable_id(item.get("id")) if isinstance(item, dict) and not batch else None
            return refused(INVALID_REQUEST, f"Invalid Request: {problem}", request_id)
        if not batch and _nameless_call(item):
            # A request the gateway reads but cannot act on: answered as a server answers bad params (an HTTP 200
            # JSON-RPC error in the session era; 2026-07-28 maps the code to 400).
            status = 400 if is_stateless(protocol_version) else 200
            message = "Invalid params: tools/call needs params.name, a string"
            return Payload(refusal=Refusal(status, INVALID_PARAMS, message, _usable_id(item.get("id"))))
    payload = _payload(tuple(items), batch, dumps(decoded))
    if len(set(payload.request_ids)) != len(payload.request_ids):
        return refused(INVALID_REQUEST, "Invalid Request: the requests of a batch need distinct ids")
    return payload


def payload_of(content: Message | list[Message]) -> Payload:
    """The payload of a message (or batch) the gateway built itself: serialized once, never parsed."""
    batch = isinstance(content, list)
    messages = tuple(content) if isinstance(content, list) else (content,)
    return _payload(messages, batch, dumps(content))


def _payload(messages: tuple[Message, ...], batch: bool, body: bytes) -> Payload:
    request_ids: list[RequestId] = []
    tool_calls: list[ToolCall] = []
    for message in messages:
        method = message.get("method")
        request_id = message.get("id")
        if isinstance(method, str) and request_id is not None:
            request_ids.append(request_id)
        params = message.get("params")
        name = params.get("name") if method == "tools/call" and isinstance(params, dict) else None
        if isinstance(name, str):
            tool_calls.append(ToolCall(_usable_id(request_id), name))
    first = messages[0]
    method = first.get("method")
    return Payload(
        messages=messages,
        batch=batch,
        body=body,
        request_ids=tuple(request_ids),
        method=method if isinstance(method, str) else None,
        declares_url_elicitation=_url_elicitation(first),
        tool_calls=tuple(tool_calls),
    )


def _usable_id(value: Any) -> RequestId | None:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _message_problem(item: Any, *, in_batch: bool) -> str | None:
    """What makes ``item`` something other than a JSON-RPC 2.0 request, notification or response as MCP uses them
    (MCP §Base Protocol "Messages": ids are strings or integers, never null; params are objects), else None."""
    if not isinstance(item, dict):
        return "expected a JSON-RPC message (an object) or a batch of them"
    if item.get("jsonrpc") != "2.0":
        return 'a JSON-RPC 2.0 message carries "jsonrpc": "2.0"'
    if "method" in item:
        method = item["method"]
        if not isinstance(method, str):
            return "the method must be a string"
        if "id" in item and _usable_id(item["id"]) is None:
            return "a request id must be a string or an integer"
        params = item.get("params")
        if "params" in item and not isinstance(params, dict):
            return "params must be an object"
        if in_batch and method == "initialize":
            return "initialize cannot be part of a batch"  # MCP 2025-03-26 §Lifecycle
        if in_batch and _nameless_call(item):
            return "tools/call needs params.name, a string"
        return None
    if ("result" in item) == ("error" in item):
        return "a message needs a method (request, notification) or exactly one of result and error (response)"
    if _usable_id(item.get("id")) is None and not ("error" in item and item.get("id") is None):
        return "a response id must be a string or an integer"
    return None


def _nameless_call(message: Message) -> bool:
    params = message.get("params")
    return message.get("method") == "tools/call" and not isinstance((params or {}).get("name"), str)


def _url_elicitation(message: Message) -> bool | None:
    """Whether the client declared ``elicitation.url`` (MCP 2025-11-25 §Elicitation: ``{}`` alone means form only).

    Read from ``initialize``'s ``capabilities`` (2025 revisions, kept in the session for later requests) or from the
    request's ``_meta`` (2026-07-28, which declares capabilities per request)."""
    params = message.get("params")
    if not isinstance(params, dict):
        return None
    capabilities: Any = None
    if message.get("method") == "initialize":
        capabilities = params.get("capabilities")
    else:
        meta = params.get("_meta")
        if isinstance(meta, dict):
            capabilities = meta.get(CLIENT_CAPABILITIES_META)
    if not isinstance(capabilities, dict):
        return None
    elicitation = capabilities.get("elicitation")
    return isinstance(elicitation, dict) and isinstance(elicitation.get("url"), dict)

"""What the proxy needs to know about the JSON-RPC message(s) in a request body, and the errors it answers itself.

The body is parsed once, only to learn the request ids (so an SSE response can be checked for completeness and an
error can answer the right id), the method, and what the client declared about URL elicitation. The body is
forwarded unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway import safe_json

# JSON-RPC 2.0 §5.1 / MCP error codes the gateway uses.
PARSE_ERROR = -32700  # invalid JSON was received (with HTTP 400): only for a body the gateway will not forward
INTERNAL_ERROR = -32603  # the gateway could not complete the call upstream (with HTTP 502/503/504)
SESSION_NOT_FOUND = -32001  # implementation-defined server error: the session id is unknown (with HTTP 404)
URL_ELICITATION_REQUIRED = -32042  # MCP 2025-11-25 §Elicitation, URLElicitationRequiredError

# MCP 2026-07-28: no initialize; each request carries the client's capabilities in params._meta.
CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"

RequestId = str | int


@dataclass(frozen=True, slots=True)
class Inbound:
    """The parsed request body. ``request_ids`` is empty for notifications and responses (answered 202)."""

    request_ids: tuple[RequestId, ...] = ()
    method: str | None = None
    batch: bool = False
    parsed: bool = True
    declares_url_elicitation: bool | None = None  # None: this message does not say (not initialize, no _meta)
    tool: str | None = None
    """The tool a single ``tools/call`` request names (for the audit trail and the metrics)."""
    refused: str | None = None
    """Why the gateway answers this body itself (400, parse error) instead of forwarding it: JSON nested deeper
    than any MCP message (``safe_json.MAX_DEPTH``), which could exhaust a parser upstream as it would ours.
    Otherwise malformed JSON is forwarded, and the upstream answers it as it answers any client."""

    @property
    def is_initialize(self) -> bool:
        return self.method == "initialize"

    @property
    def expects_response(self) -> bool:
        """True unless the body is known to hold only notifications and responses."""
        return bool(self.request_ids) or not self.parsed


UNPARSED = Inbound(parsed=False)


def inspect(body: bytes) -> Inbound:
    try:
        decoded = safe_json.loads(body)
    except safe_json.JsonTooDeep as too_deep:
        return Inbound(parsed=False, refused=f"Parse error: {too_deep}")
    except ValueError:
        return UNPARSED
    batch = isinstance(decoded, list)
    items = decoded if batch else [decoded]
    messages = [item for item in items if isinstance(item, dict)]
    if not messages or len(messages) != len(items):
        return UNPARSED
    request_ids: list[RequestId] = []
    for message in messages:
        if "method" in message and "id" in message:
            request_id = message["id"]
            if not isinstance(request_id, str | int) or isinstance(request_id, bool):
                return UNPARSED
            request_ids.append(request_id)
    first = messages[0]
    method = first.get("method") if isinstance(first.get("method"), str) else None
    return Inbound(
        request_ids=tuple(request_ids),
        method=method,
        batch=batch,
        declares_url_elicitation=_url_elicitation(first),
        tool=None if batch or method != "tools/call" else _tool_name(first),
    )


def _tool_name(message: dict[str, Any]) -> str | None:
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return name[:200] if isinstance(name, str) else None


def _url_elicitation(message: dict[str, Any]) -> bool | None:
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


def error_response(
    request_id: RequestId | None, code: int, message: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON-RPC error response to the request ``request_id`` (JSON-RPC 2.0 §5.1)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def error_body(inbound: Inbound, code: int, message: str, data: dict[str, Any] | None = None) -> bytes:
    """A JSON-RPC error answering every request of the body (a batch gets an array), or one with ``id: null``."""
    ids: list[RequestId | None] = list(inbound.request_ids) or [None]
    responses = [error_response(request_id, code, message, data) for request_id in ids]
    payload: Any = responses if inbound.batch and inbound.request_ids else responses[0]
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def is_error_response(body: bytes) -> bool:
    """Whether ``body`` is a JSON-RPC error response (JSON-RPC 2.0 §5): an object with ``jsonrpc`` and ``error`` and no
    ``method``, or a batch made only of such objects."""
    try:
        decoded = safe_json.loads(body)
    except ValueError:
        return False
    items = decoded if isinstance(decoded, list) else [decoded]
    return bool(items) and all(
        isinstance(item, dict) and "jsonrpc" in item and "error" in item and "method" not in item for item in items
    )


def response_ids(message: Any) -> list[RequestId]:
    """The ids of the JSON-RPC responses (results or errors) in a decoded message or batch."""
    items = message if isinstance(message, list) else [message]
    return [
        item["id"]
        for item in items
        if isinstance(item, dict)
        and ("result" in item or "error" in item)
        and "method" not in item
        and isinstance(item.get("id"), str | int)
    ]

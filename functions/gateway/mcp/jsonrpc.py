"""JSON-RPC 2.0 messages as the gateway builds and reads them (decoded JSON objects), and their one serialization."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

RequestId = str | int
Message = dict[str, Any]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON: what the gateway sends upstream and answers clients (one encoder for all of it)."""
    return _ENCODER.encode(value).encode()


def error_response(
    request_id: RequestId | None, code: int, message: str, data: dict[str, Any] | None = None
) -> Message:
    """The JSON-RPC error response to the request ``request_id`` (JSON-RPC 2.0 §5.1)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def is_response(message: Any) -> bool:
    """A result or an error (JSON-RPC 2.0 §5), not a request or notification."""
    return isinstance(message, dict) and ("result" in message or "error" in message) and "method" not in message


def is_error_response(decoded: Any) -> bool:
    """Whether a decoded body is a JSON-RPC error response (JSON-RPC 2.0 §5): an object with ``jsonrpc`` and
    ``error`` and no ``method``, or a batch made only of such objects."""
    items = decoded if isinstance(decoded, list) else [decoded]
    return bool(items) and all(
        isinstance(item, dict) and "jsonrpc" in item and "error" in item and "method" not in item for item in items
    )


def response_ids(messages: Iterable[Any]) -> list[RequestId]:
    """The ids of the responses (results or errors) among decoded messages."""
    return [
        message["id"]
        for message in messages
        if is_response(message) and isinstance(message.get("id"), str | int) and not isinstance(message["id"], bool)
    ]


def flatten(decoded: Any) -> list[Message]:
    """The JSON-RPC objects of a decoded body: a message, or each message of a batch (anything else is dropped)."""
    items = decoded if isinstance(decoded, list) else [decoded]
    return [item for item in items if isinstance(item, dict)]

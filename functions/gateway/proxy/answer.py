"""The two sides of one exchange with an upstream: :class:`Outgoing`, what goes to it, and :class:`Relayed`, what the
client gets — the HTTP status, headers and body, and, when the gateway built the body or read it, the JSON-RPC
messages it carries, so that nothing the gateway produced is parsed again (the audit trail reads how each call ended
from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import safe_json
from gateway.mcp import sse
from gateway.mcp.jsonrpc import Message, RequestId, dumps, error_response, flatten
from gateway.mcp.payload import NO_PAYLOAD, Payload
from gateway.routes import Route

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request to a route's upstream on behalf of a user: the HTTP method, the transport headers (never the
    client's credentials) and the payload (none for GET and DELETE)."""

    route: Route
    user_id: str
    method: str
    headers: dict[str, str]
    payload: Payload = NO_PAYLOAD


@dataclass(frozen=True, slots=True)
class Relayed:
    status_code: int
    headers: dict[str, str]
    body: bytes
    messages: tuple[Message, ...] | None = None
    """The JSON-RPC messages of ``body`` in order, when the gateway built or decoded it; None when it was relayed
    unread."""


def json_answer(status: int, content: Message | list[Message], headers: dict[str, str] | None = None) -> Relayed:
    """A JSON answer the gateway built: one message, or a batch of them, serialized once."""
    messages = tuple(content) if isinstance(content, list) else (content,)
    return Relayed(status, {**(headers or {}), "content-type": JSON}, dumps(content), messages)


def stream_answer(messages: list[Message], headers: dict[str, str] | None = None) -> Relayed:
    """An SSE answer the gateway built (MCP Streamable HTTP: notifications first, the response last), whole."""
    body = "".join(sse.event(message) for message in messages).encode()
    return Relayed(200, {**(headers or {}), "content-type": EVENT_STREAM}, body, tuple(messages))


def error_answer(status: int, payload: Payload, code: int, message: str, data: dict[str, Any] | None = None) -> Relayed:
    """A JSON-RPC error answering every request of ``payload`` (a batch gets an array), or one with ``id: null``."""
    ids: list[RequestId | None] = list(payload.request_ids) or [None]
    responses = [error_response(request_id, code, message, data) for request_id in ids]
    return json_answer(status, responses if payload.batch and payload.request_ids else responses[0])


def decoded_json(body: bytes) -> tuple[Message, ...]:
    """The JSON-RPC messages of an upstream's JSON body (none when it is not JSON)."""
    try:
        return tuple(flatten(safe_json.loads(body)))
    except ValueError:
        return ()


def media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()

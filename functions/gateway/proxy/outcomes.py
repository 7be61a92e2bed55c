"""How a proxied ``tools/call`` ended, as the audit trail records it (its tool's name is ``Inbound.tool``)."""

from __future__ import annotations

from typing import Any

from gateway import safe_json
from gateway.proxy import sse
from gateway.proxy.forward import EVENT_STREAM, Relayed, media_type


def outcome(relayed: Relayed) -> str:
    """``ok``, ``error`` (a JSON-RPC error or a tool's error result) or ``http_<status>``, from the answer the client
    got (a JSON body, or the response inside an SSE stream)."""
    if relayed.status_code != 200:
        return f"http_{relayed.status_code}"
    texts: list[str | bytes]
    if media_type(relayed.headers.get("content-type")) == EVENT_STREAM:
        try:
            texts = [data for data in sse.parse(relayed.body.decode()).data if '"id"' in data]
        except UnicodeDecodeError:
            return "error"
    else:
        texts = [relayed.body]
    for text in reversed(texts):
        try:
            message: Any = safe_json.loads(text)
        except ValueError:
            continue
        found = message_outcome(message)
        if found is not None:
            return found
    return "error"


def message_outcome(message: Any) -> str | None:
    """``ok`` or ``error`` for a JSON-RPC response (an error, or a tool's result with ``isError``); None for any
    other message."""
    if isinstance(message, dict) and ("result" in message or "error" in message):
        result = message.get("result")
        failed = "error" in message or (isinstance(result, dict) and result.get("isError") is True)
        return "error" if failed else "ok"
    return None

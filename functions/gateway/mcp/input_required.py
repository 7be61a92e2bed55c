"""MCP 2026-07-28 multi round-trip requests (§Basic "Multi Round-Trip Requests", SEP-2322): the shapes the gateway
builds and reads.

A server that needs more input answers a request with an ``InputRequiredResult`` (``resultType:
"input_required"``, an ``inputRequests`` map of server-to-client requests, an opaque ``requestState``); the client
fulfils the input requests and retries the same request, with a new id, carrying ``inputResponses`` (the same keys)
and the ``requestState`` byte for byte. Only ``tools/call``, ``prompts/get`` and ``resources/read`` may be answered
this way (§"Supported Requests"), and an input request of a kind the client did not declare must not be sent.

The gateway asks a 2026-07-28 client to connect an upstream account with one URL-mode elicitation input request
(§Client "Elicitation", "URL Mode Elicitation Requests": ``mode``, ``message``, ``url``; no ``elicitationId`` in this
revision), where MCP 2025-11-25 has the ``-32042`` error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.mcp.jsonrpc import Message

INPUT_REQUIRED = "input_required"
COMPLETE = "complete"
MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
INPUT_RESPONSES = "inputResponses"
REQUEST_STATE = "requestState"


def url_elicitation(url: str, message: str) -> Message:
    """An ``elicitation/create`` input request in URL mode (an ``ElicitRequest`` without an id)."""
    return {"method": "elicitation/create", "params": {"mode": "url", "message": message, "url": url}}


def input_required(input_requests: Mapping[str, Message], request_state: str | None) -> dict[str, Any]:
    """An ``InputRequiredResult`` (at least one of the two parts must be present, §"Server Requirements")."""
    result: dict[str, Any] = {"resultType": INPUT_REQUIRED}
    if input_requests:
        result["inputRequests"] = dict(input_requests)
    if request_state is not None:
        result[REQUEST_STATE] = request_state
    return result


def responses_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request's ``inputResponses`` (an object of objects; anything else reads as none)."""
    found = params.get(INPUT_RESPONSES)
    return dict(found) if isinstance(found, Mapping) else {}


def action_of(response: Any) -> str | None:
    """The user's answer to an elicitation (``accept``, ``decline``, ``cancel``), None when there is none."""
    action = response.get("action") if isinstance(response, Mapping) else None
    return action if isinstance(action, str) else None

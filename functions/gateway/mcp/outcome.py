"""How an exchange ended, as the audit trail and the metrics record it: ``ok``, ``error`` (a JSON-RPC error, or a
tool's result with ``isError``), ``auth_required`` (the user must connect or reconnect an upstream account: the
URL elicitation error of the session era), ``input_required`` (MCP 2026-07-28: the call did not run yet, the client
was asked for more, e.g. to connect an upstream account) or ``http_<status>`` when no JSON-RPC answer came with a
200."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.mcp.codes import URL_ELICITATION_REQUIRED
from gateway.mcp.jsonrpc import RequestId, is_response

OK = "ok"
ERROR = "error"
AUTH_REQUIRED = "auth_required"
INPUT_REQUIRED = "input_required"


def message_outcome(message: Any) -> str | None:
    """``ok``, ``error``, ``auth_required`` or ``input_required`` for a JSON-RPC response; None for any other
    message."""
    if not is_response(message):
        return None
    error = message.get("error")
    if isinstance(error, dict) and error.get("code") == URL_ELICITATION_REQUIRED:
        return AUTH_REQUIRED
    result = message.get("result")
    failed = "error" in message or (isinstance(result, dict) and result.get("isError") is True)
    if not failed and isinstance(result, dict) and result.get("resultType") == INPUT_REQUIRED:
        return INPUT_REQUIRED
    return ERROR if failed else OK


def outcomes_by_id(messages: Iterable[Any]) -> dict[RequestId, str]:
    """The outcome of each response among ``messages``, by its request id (a later answer wins)."""
    found: dict[RequestId, str] = {}
    for message in messages:
        ended = message_outcome(message)
        request_id = message.get("id") if ended is not None else None
        if ended is not None and isinstance(request_id, str | int):
            found[request_id] = ended
    return found


def request_outcome(status: int, outcomes: dict[RequestId, str], request_id: RequestId | None) -> str:
    """How the request ``request_id`` ended, given the HTTP status of the answer and the outcomes it carried."""
    if status != 200:
        return f"http_{status}"
    if request_id is None:
        return ERROR
    return outcomes.get(request_id, ERROR)

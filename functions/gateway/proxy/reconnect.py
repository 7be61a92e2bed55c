"""The answer to a call whose user must (re)connect their upstream account first.

MCP 2025-11-25 §Elicitation "URL Elicitation Required Error": a server that cannot proceed until the user completes
a URL-mode elicitation answers the request with JSON-RPC error ``-32042`` whose ``data.elicitations`` lists them
(``mode: "url"``, an ``elicitationId``, the ``url`` and a ``message``). It may do so only for clients that declared
``capabilities.elicitation.url``; any other client gets an ordinary JSON-RPC error (``-32603``) whose message holds
the connect URL, so a person reading it can still act.

HTTP status: 200. On Streamable HTTP a JSON-RPC error is a JSON-RPC *response* and travels like any response to a
POSTed request (``Content-Type: application/json``, 200); the SDKs surface its code and data to the caller only
then (a 4xx/5xx is reported as a transport failure and the ``data`` is lost). Notifications cannot be answered with
a JSON-RPC response: the transport requires an HTTP error status for input the server cannot accept, so they get
403 with the same error (``id: null``).
"""

from __future__ import annotations

import uuid
from typing import Any

from gateway.mcp.codes import INTERNAL_ERROR, URL_ELICITATION_REQUIRED
from gateway.mcp.jsonrpc import Message, RequestId, error_response
from gateway.mcp.payload import Payload
from gateway.proxy.answer import Relayed, json_answer
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired


def reconnect_message(
    request_id: RequestId | None, route: Route, required: ReconnectRequired, *, url_elicitation: bool
) -> Message:
    """The answer to one request whose user must (re)connect the upstream account first.

    Built per request, from its id, so that each revision's form can be chosen here: MCP 2026-07-28 replaces
    server-to-client requests with ``input_required`` results (multi round-trip requests), the seam for that form.
    """
    title = route.title
    if url_elicitation:
        data: dict[str, Any] = {
            "elicitations": [
                {
                    "mode": "url",
                    "elicitationId": str(uuid.uuid4()),
                    "url": required.connect_url,
                    "message": f"Sign in to {title} ({required.upstream}) so the gateway can call it for you.",
                }
            ]
        }
        message = f"Connect your {title} account to continue: the gateway has no usable credential for it."
        return error_response(request_id, URL_ELICITATION_REQUIRED, message, data)
    message = f"Connect your {title} account ({required.upstream}) by opening {required.connect_url} , then retry."
    data = {"upstream": required.upstream, "connectUrl": required.connect_url, "reason": required.reason}
    return error_response(request_id, INTERNAL_ERROR, message, data)


def reconnect_response(
    route: Route, payload: Payload, required: ReconnectRequired, *, url_elicitation: bool
) -> Relayed:
    """The answer to every request of ``payload``; 403 with ``id: null`` for a payload of notifications only."""
    ids: list[RequestId | None] = list(payload.request_ids) or [None]
    answers = [reconnect_message(request_id, route, required, url_elicitation=url_elicitation) for request_id in ids]
    status = 200 if payload.request_ids else 403
    return json_answer(status, answers if payload.batch and payload.request_ids else answers[0])

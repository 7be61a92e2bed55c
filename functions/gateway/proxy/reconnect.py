"""The answer to a request whose user must (re)connect their upstream account first, in the form of the client's era.

- **MCP 2025-11-25** §Elicitation "URL Elicitation Required Error": a server that cannot proceed until the user
  completes a URL-mode elicitation answers the request with JSON-RPC error ``-32042`` whose ``data.elicitations``
  lists them (``mode: "url"``, an ``elicitationId``, the ``url`` and a ``message``).
- **MCP 2026-07-28** §Basic "Multi Round-Trip Requests": ``-32042`` is gone ("2025-11-25 only"); a ``tools/call``,
  ``prompts/get`` or ``resources/read`` is answered with an ``InputRequiredResult`` holding one URL-mode elicitation
  and the gateway's sealed ``requestState`` (:mod:`gateway.proxy.request_state`); the client opens the URL, then
  retries the same request with ``inputResponses`` and the state, and the retry completes once the account is
  connected (or asks again).

Either form is used only for a client that declared ``capabilities.elicitation.url`` (in ``initialize``, or in a
2026-07-28 request's ``_meta``); any other client, and any other method, gets an ordinary JSON-RPC error
(``-32603``) whose message holds the connect URL, so a person reading it can still act.

HTTP status: 200. On Streamable HTTP a JSON-RPC error is a JSON-RPC *response* and travels like any response to a
POSTed request (``Content-Type: application/json``, 200); the SDKs surface its code and data to the caller only
then (a 4xx/5xx is reported as a transport failure and the ``data`` is lost). Notifications cannot be answered with
a JSON-RPC response: the transport requires an HTTP error status for input the server cannot accept, so they get
403 with the same error (``id: null``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from gateway.mcp.codes import INTERNAL_ERROR, URL_ELICITATION_REQUIRED
from gateway.mcp.input_required import MRTR_METHODS, input_required, url_elicitation
from gateway.mcp.jsonrpc import Message, RequestId, error_response
from gateway.mcp.payload import Payload
from gateway.proxy.answer import Relayed, json_answer
from gateway.proxy.request_state import RequestStateCodec
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired

DECLINED = frozenset({"decline", "cancel"})


@dataclass(frozen=True, slots=True)
class Asker:
    """Whom the gateway asks to connect an account, and in which era's form.

    ``route_key`` is the route the client called (a virtual route's, for its members); ``stateless``: the request
    speaks MCP 2026-07-28 (no session), which needs ``states`` for the ``requestState``; ``answered``: the user's
    answer to the gateway's previous elicitation, when this request is its retry."""

    route_key: str
    user_id: str
    url_elicitation: bool
    stateless: bool = False
    states: RequestStateCodec | None = None
    answered: str | None = None


def input_key(member: str, route: Route) -> str:
    """The key of the gateway's input request in an ``InputRequiredResult`` (server-assigned, §MRTR)."""
    return f"connect_{member or route.server_name}"


def reconnect_message(
    message: Message, route: Route, required: ReconnectRequired, asker: Asker, *, member: str = ""
) -> Message:
    """The answer to one request (``message``, as the upstream would have got it) whose user must (re)connect the
    account of ``route``'s upstream (``member``: its name on a virtual route)."""
    request_id: RequestId | None = message.get("id")
    title = route.title
    prompt = f"Sign in to {title} ({required.upstream}) so the gateway can call it for you."
    if asker.answered in DECLINED:
        text = f"The {title} account ({required.upstream}) is not connected, so the request was not made"
        declined = {"upstream": required.upstream, "connectUrl": required.connect_url, "reason": "declined"}
        return error_response(
            request_id, INTERNAL_ERROR, f"{text}; connect it at {required.connect_url} to use it.", declined
        )
    if asker.stateless and asker.url_elicitation and asker.states is not None and message.get("method") in MRTR_METHODS:
        key = input_key(member, route)
        state = asker.states.ask(message, member=member, key=key, route_key=asker.route_key, user_id=asker.user_id)
        result = input_required({key: url_elicitation(required.connect_url, prompt)}, state)
        return {"jsonrpc": "2.0", "id": request_id, "result": result}
    if asker.url_elicitation and not asker.stateless:
        data: dict[str, Any] = {
            "elicitations": [
                {"mode": "url", "elicitationId": str(uuid.uuid4()), "url": required.connect_url, "message": prompt}
            ]
        }
        text = f"Connect your {title} account to continue: the gateway has no usable credential for it."
        return error_response(request_id, URL_ELICITATION_REQUIRED, text, data)
    text = f"Connect your {title} account ({required.upstream}) by opening {required.connect_url} , then retry."
    data = {"upstream": required.upstream, "connectUrl": required.connect_url, "reason": required.reason}
    return error_response(request_id, INTERNAL_ERROR, text, data)


def reconnect_response(route: Route, payload: Payload, required: ReconnectRequired, asker: Asker) -> Relayed:
    """The answer to every request of ``payload``; 403 with ``id: null`` for a payload of notifications only."""
    requests = [message for message in payload.messages if "method" in message and "id" in message]
    if not requests:
        return json_answer(403, reconnect_message({"id": None}, route, required, asker))
    answers = [reconnect_message(message, route, required, asker) for message in requests]
    return json_answer(200, answers if payload.batch else answers[0])

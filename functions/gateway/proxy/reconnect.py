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

from gateway.proxy.forward import JSON, Relayed
from gateway.proxy.jsonrpc import INTERNAL_ERROR, URL_ELICITATION_REQUIRED, Inbound, error_body
from gateway.routes import Route
from gateway.upstream.credentials import ReconnectRequired


def reconnect_response(
    route: Route, inbound: Inbound, required: ReconnectRequired, *, url_elicitation: bool
) -> Relayed:
    title = route.title
    if url_elicitation:
        body = error_body(
            inbound,
            URL_ELICITATION_REQUIRED,
            f"Connect your {title} account to continue: the gateway has no usable credential for it.",
            {
                "elicitations": [
                    {
                        "mode": "url",
                        "elicitationId": str(uuid.uuid4()),
                        "url": required.connect_url,
                        "message": f"Sign in to {title} ({required.upstream}) so the gateway can call it for you.",
                    }
                ]
            },
        )
    else:
        body = error_body(
            inbound,
            INTERNAL_ERROR,
            f"Connect your {title} account ({required.upstream}) by opening {required.connect_url} , then retry.",
            {"upstream": required.upstream, "connectUrl": required.connect_url, "reason": required.reason},
        )
    status = 200 if inbound.request_ids else 403
    return Relayed(status, {"content-type": JSON}, body)

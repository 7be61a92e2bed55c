"""One JSON-RPC message from a virtual route to one of its upstreams, and its answer as a decoded message.

The exchange is the single-upstream proxy's (:func:`gateway.proxy.relay.exchange_with_credentials`: the user's
credential, one renewal after a 401, SSE answers completed by resumption, size and redirect checks), so an upstream
of a virtual route behaves exactly as it would on a route of its own. What comes back is either the JSON-RPC
response to our request (from a JSON body or from the SSE stream that carried it), or an :class:`UpstreamProblem`
that says, for the merged answer, what went wrong with this upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

from gateway import safe_json
from gateway.proxy import sse
from gateway.proxy.forward import EVENT_STREAM, UpstreamFailure, media_type
from gateway.proxy.jsonrpc import inspect
from gateway.proxy.relay import exchange_with_credentials
from gateway.routes import Route
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError
from gateway.upstream.credentials import ReconnectRequired, UpstreamAuthUnavailable, UpstreamCredentialProvider

logger = logging.getLogger("gateway.virtual")

ACCEPT = "application/json, text/event-stream"
STATELESS_VERSION = "2026-07-28"
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class UpstreamProblem:
    """Why an upstream gave no usable answer. ``reconnect`` is set when the user must connect it first."""

    member: str
    cause: str
    reconnect: ReconnectRequired | None = None
    session_lost: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The upstream's JSON-RPC response (``message``; None for an accepted notification) and its headers."""

    message: dict[str, Any] | None
    session_id: str | None
    protocol_version: str | None
    notifications: tuple[dict[str, Any], ...] = ()
    """What the upstream sent before its answer on an SSE stream (progress, logging), in order."""


async def call(
    route: Route,
    provider: UpstreamCredentialProvider,
    user_id: str,
    message: dict[str, Any],
    *,
    session_id: str | None,
    protocol_version: str | None,
    trace_headers: dict[str, str],
) -> Answer | UpstreamProblem:
    """Send ``message`` (a request gets a fresh id of ours; a notification goes as it is) to one upstream."""
    member = route.member or route.key
    request = dict(message)
    if "id" in request:
        request["id"] = f"gw-{next(_ids)}"
    body = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"content-type": "application/json", "accept": ACCEPT, **trace_headers}
    if protocol_version:
        headers["mcp-protocol-version"] = protocol_version
    if protocol_version == STATELESS_VERSION:  # MCP 2026-07-28 routing headers, matching the body
        headers["mcp-method"] = str(request.get("method"))
        params = request.get("params") if isinstance(request.get("params"), dict) else {}
        assert isinstance(params, dict)
        name = params.get("uri") if request.get("method", "").startswith("resources/") else params.get("name")
        if isinstance(name, str):
            headers["mcp-name"] = name
    if session_id:
        headers["mcp-session-id"] = session_id
    inbound = inspect(body)
    try:
        async with asyncio.timeout(route.server.timeout_seconds):
            relayed = await exchange_with_credentials(provider, route, user_id, "POST", headers, body, inbound)
    except ReconnectRequired as required:
        return UpstreamProblem(member, f"needs the user to connect it: {required.reason}", reconnect=required)
    except UpstreamFailure as failure:
        return UpstreamProblem(member, failure.cause)
    except TimeoutError:
        return UpstreamProblem(member, f"did not answer within {route.server.timeout_seconds:g} s")
    except (UpstreamAuthUnavailable, SecretUnavailableError, StorageError) as problem:
        logger.warning("upstream %s: %s", route.key, problem)
        return UpstreamProblem(member, "cannot be called now: its credential is unavailable")
    if relayed.status_code == 404 and session_id:
        return UpstreamProblem(member, "forgot its session", session_lost=True)
    if "id" not in request:
        if relayed.status_code >= 400:
            return UpstreamProblem(member, f"refused the notification (HTTP {relayed.status_code})")
        return Answer(None, relayed.headers.get("mcp-session-id"), relayed.headers.get("mcp-protocol-version"))
    messages = _messages(relayed.body, relayed.headers.get("content-type"))
    response = next((m for m in messages if m.get("id") == request["id"] and ("result" in m or "error" in m)), None)
    if response is None:
        return UpstreamProblem(member, f"gave no JSON-RPC answer (HTTP {relayed.status_code})")
    # Requests of the upstream's own (sampling, elicitation) cannot be answered on a buffered response: dropped.
    notifications = tuple(m for m in messages if isinstance(m.get("method"), str) and "id" not in m)
    return Answer(
        response, relayed.headers.get("mcp-session-id"), relayed.headers.get("mcp-protocol-version"), notifications
    )


async def end_session(
    route: Route, provider: UpstreamCredentialProvider, user_id: str, session_id: str, protocol_version: str
) -> None:
    """DELETE one upstream session; a failure only means the upstream keeps it until it expires."""
    headers = {"mcp-session-id": session_id, "mcp-protocol-version": protocol_version}
    try:
        async with asyncio.timeout(route.server.timeout_seconds):
            await exchange_with_credentials(provider, route, user_id, "DELETE", headers, b"", inspect(b""))
    except (
        ReconnectRequired,
        UpstreamFailure,
        TimeoutError,
        UpstreamAuthUnavailable,
        SecretUnavailableError,
        StorageError,
    ):
        logger.info("upstream %s: its session could not be ended", route.key)


def _messages(body: bytes, content_type: str | None) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a JSON body or of an SSE stream, in order (anything else is skipped)."""
    if media_type(content_type) == EVENT_STREAM:
        try:
            texts = [data for data in sse.parse(body.decode()).data if data.strip()]
        except UnicodeDecodeError:
            return []
    else:
        texts = [body.decode("utf-8", "replace")]
    messages: list[dict[str, Any]] = []
    for text in texts:
        try:
            decoded = safe_json.loads(text)
        except ValueError:
            continue
        messages += [item for item in (decoded if isinstance(decoded, list) else [decoded]) if isinstance(item, dict)]
    return messages

"""A plain route's session whose user had not connected the upstream account when the client initialized.

The gateway answers such an ``initialize`` itself (:mod:`gateway.proxy.unconnected`: clients treat a failed one as a
dead server) and seals a *deferred* session id: instead of an upstream session id it carries what the client
introduced itself with (its ``initialize`` params, trimmed; :class:`gateway.proxy.session_ids.Session`). Once the
account is connected, the first request that needs the upstream opens an upstream session with that introduction
(``initialize``, then ``notifications/initialized``, MCP §Lifecycle) and goes on in it. The client's own id cannot
change mid-session (clients read ``Mcp-Session-Id`` from the ``initialize`` answer only), so the upstream sessions
opened later are kept by the warm container, by the client's session id (:class:`LaterSessions`, bounded);
another container opens one of its own. Until then, notifications are accepted and dropped (the upstream gets its
own ``notifications/initialized`` when its session opens).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from gateway import safe_json
from gateway.mcp.jsonrpc import Message
from gateway.mcp.payload import payload_of
from gateway.proxy.answer import Outgoing
from gateway.proxy.exchange import ExchangeFailed, exchange
from gateway.routes import Route
from gateway.upstream.credentials import UpstreamCredentialProvider

ACCEPT = "application/json, text/event-stream"
MAX_INTRODUCTION_BYTES = 2048
MAX_LATER_SESSIONS = 10_000
CLIENT_INFO_KEYS = ("name", "title", "version")


def introduction(params: dict[str, Any]) -> str:
    """What a deferred session keeps of the client's ``initialize`` params: its revision, its capabilities (only
    their names when they are large) and its name, title and version, as compact JSON."""
    info = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
    assert isinstance(info, dict)
    capabilities = params.get("capabilities") if isinstance(params.get("capabilities"), dict) else {}
    assert isinstance(capabilities, dict)
    kept: dict[str, Any] = {
        "protocolVersion": params.get("protocolVersion"),
        "capabilities": capabilities,
        "clientInfo": {key: str(info[key])[:200] for key in CLIENT_INFO_KEYS if key in info},
    }
    if len(_dumps(kept)) > MAX_INTRODUCTION_BYTES:
        kept["capabilities"] = {str(name)[:64]: {} for name in list(capabilities)[:16]}
    return _dumps(kept)


@dataclass(frozen=True, slots=True)
class LaterSession:
    """An upstream session opened after the client's ``initialize``: its id (None for a sessionless upstream) and
    the revision the upstream negotiated."""

    session_id: str | None
    protocol_version: str


class LaterSessions:
    """The upstream sessions this container opened for deferred client sessions (at most ``max_entries``, the
    oldest forgotten first: a client whose session is forgotten gets a new upstream session)."""

    def __init__(self, max_entries: int = MAX_LATER_SESSIONS) -> None:
        self.max_entries = max_entries
        self._sessions: OrderedDict[str, LaterSession] = OrderedDict()

    def get(self, client_session: str) -> LaterSession | None:
        return self._sessions.get(client_session)

    def put(self, client_session: str, session: LaterSession) -> None:
        self._sessions.pop(client_session, None)
        while len(self._sessions) >= self.max_entries:
            self._sessions.popitem(last=False)
        self._sessions[client_session] = session

    def drop(self, client_session: str) -> None:
        self._sessions.pop(client_session, None)


async def open_later(
    provider: UpstreamCredentialProvider, route: Route, user_id: str, introduced: str, trace: dict[str, str]
) -> LaterSession | ExchangeFailed:
    """Initialize the upstream for a deferred session (the account is connected by now, or the exchange says why
    not), and tell it the client is ready."""
    try:
        params = safe_json.loads(introduced)
    except ValueError:
        params = {}
    if not isinstance(params, dict):
        params = {}
    opening: Message = {"jsonrpc": "2.0", "id": "gw-initialize", "method": "initialize", "params": params}
    headers = {"content-type": "application/json", "accept": ACCEPT, **trace}
    answer = await exchange(provider, Outgoing(route, user_id, "POST", headers, payload_of(opening)), decode=True)
    if isinstance(answer, ExchangeFailed):
        return answer
    result = next(
        (m.get("result") for m in answer.messages or () if m.get("id") == "gw-initialize" and "result" in m), None
    )
    if answer.status_code != 200 or not isinstance(result, dict):
        return ExchangeFailed(502, f"refused the gateway's initialize (HTTP {answer.status_code})")
    negotiated = result.get("protocolVersion")
    version = negotiated if isinstance(negotiated, str) else str(params.get("protocolVersion") or "")
    session = LaterSession(answer.headers.get("mcp-session-id"), version)
    ready = {**headers, "mcp-protocol-version": version}
    if session.session_id:
        ready["mcp-session-id"] = session.session_id
    notification = payload_of({"jsonrpc": "2.0", "method": "notifications/initialized"})
    await exchange(provider, Outgoing(route, user_id, "POST", ready, notification))  # its failure shows on the call
    return session


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

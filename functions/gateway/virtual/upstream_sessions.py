"""The upstream sessions behind a client's requests on a virtual route (the gateway as each upstream's client), and
the context of one client request.

A client's own ``initialize`` opens one session per upstream (:class:`gateway.virtual.server.VirtualServer`), sealed
inside the client's session id. :class:`UpstreamSessions` keeps what changes after that in the warm container: an
upstream initialized later (it was down, or not connected), again (it forgot its session), or for a 2026-07-28 client
that has no session at all while the upstream speaks an older revision. Such sessions belong to one client session,
or — for a sessionless client — to one user of one route: they are keyed by the member route's key
(``workspace/server/upstream``), never by the upstream's name alone, which other routes and workspaces reuse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.mcp.codes import INVALID_REQUEST, SESSION_NOT_FOUND, UNSUPPORTED_PROTOCOL_VERSION
from gateway.mcp.jsonrpc import Message
from gateway.mcp.revisions import LATEST_SESSION_VERSION, SESSION_VERSIONS, STATELESS_VERSION
from gateway.proxy.headers import PARAM_HEADER_PREFIX
from gateway.routes import Route
from gateway.upstream.credentials import UpstreamCredentialProvider
from gateway.virtual.merge import cause_of, result_of
from gateway.virtual.state import UpstreamSession, VirtualState
from gateway.virtual.upstream_call import Answer, UpstreamProblem, call

logger = logging.getLogger("gateway.virtual")

MAX_LATER_SESSIONS = 10_000
# How an upstream of the session era refuses a 2026-07-28 request (-32000: the SDKs' "no session" answer).
_REFUSALS_OF_STATELESS = (INVALID_REQUEST, UNSUPPORTED_PROTOCOL_VERSION, -32000, SESSION_NOT_FOUND)

ProviderFor = Callable[[Route], UpstreamCredentialProvider]


class SessionEnded(Exception):
    """Every upstream session behind the client's is gone (it was deleted, or its only upstream forgot it): the
    client gets 404 and starts a new session (MCP §Session Management)."""


@dataclass(frozen=True, slots=True)
class VirtualRequest:
    """One client POST on a virtual route: who, where, and the upstream sessions behind the client's id."""

    route: Route
    user_id: str
    provider_for: ProviderFor
    state: VirtualState
    client_version: str | None
    trace: dict[str, str]
    client_session: str | None = None
    """The client's sealed session id, which keys the upstream sessions this container opened after it."""
    client_headers: dict[str, str] = field(default_factory=dict)
    """The client's MCP transport headers (:func:`gateway.proxy.headers.transport_headers`)."""
    streamed: list[Message] = field(default_factory=list)
    """Notifications an upstream sent before its answer (progress, logging): relayed on an SSE answer."""

    @property
    def stateless(self) -> bool:
        """The client speaks MCP 2026-07-28 or later: no session, and a protocol version of the stateless era (an
        unsupported one is refused by :mod:`gateway.mcp.stateless`); its requests go to each upstream as they are."""
        return (
            self.client_session is None
            and self.client_version is not None
            and self.client_version not in SESSION_VERSIONS
        )


class UpstreamSessions:
    """The upstream sessions this container opened after the clients' own ``initialize``."""

    def __init__(self) -> None:
        # The client's id cannot change mid-session, so this container keeps them; another container opens its own.
        # Keyed by (client session, or "~" + user for a sessionless client; member route key).
        self._later: dict[tuple[str, str], UpstreamSession] = {}
        self._legacy: dict[str, bool] = {}  # upstream key -> refuses 2026-07-28 requests (learnt on first use)
        self._capabilities: dict[str, Any] = {}  # upstream key -> what its last initialize offered

    def in_session(self, request: VirtualRequest, member: Route) -> bool:
        """Whether an upstream session with ``member`` stands behind the client's (opened at its ``initialize``, or
        later by this container)."""
        owner = _owner(request)
        return (member.member or "") in request.state.upstreams or (
            owner is not None and (owner, member.key) in self._later
        )

    def legacy_capabilities(self, member: Route) -> Any | None:
        """What an upstream of an older revision offered at the initialize this container sent it, if any."""
        return self._capabilities.get(member.key) if self._legacy.get(member.key) else None

    async def send(self, request: VirtualRequest, member: Route, message: Message) -> Answer | UpstreamProblem:
        """``message`` to one upstream in the client's session: an upstream session missing from it (the upstream
        was down or not connected at initialize) is opened first, and one the upstream forgot is opened again.

        A 2026-07-28 client has no session: an upstream that speaks that revision gets its requests as they are;
        one that does not (it refuses them) gets them in a session of its own revision, opened by this container
        for the user (each revision independently on each side)."""
        name = member.member or ""
        owner = _owner(request)
        later_key = (owner or "", member.key)
        session = (self._later.get(later_key) if owner else None) or request.state.upstreams.get(name)
        if session is None and request.stateless and self._legacy.get(member.key) is not True:
            answer = await self.call_in(request, member, message, None)
            if not _refused_stateless(answer):
                if isinstance(answer, Answer):  # the upstream itself answered (not: the user must connect it first)
                    self._legacy[member.key] = False
                return answer
            if self._legacy.get(member.key) is False:
                return answer  # it speaks the revision: the refusal is its answer
            opened = await self.open_session(request, member)
            if isinstance(opened, UpstreamProblem):
                return answer  # not an older revision either: its refusal stands
            self._legacy[member.key] = True
            logger.info("upstream %s does not speak %s: using a session of its own", member.key, STATELESS_VERSION)
            session = opened
        if session is None and owner is not None:
            opened = await self.open_session(request, member)
            if isinstance(opened, UpstreamProblem):
                return opened
            session = opened
        answer = await self.call_in(request, member, _for_session(message, session), session)
        if isinstance(answer, UpstreamProblem) and answer.session_lost:
            if set(request.state.upstreams) == {name} and later_key not in self._later:
                raise SessionEnded  # its only upstream forgot it: as the upstream would, say the session is gone
            reopened = await self.open_session(request, member)
            if isinstance(reopened, UpstreamProblem):
                return reopened
            answer = await self.call_in(request, member, _for_session(message, reopened), reopened)
        return answer

    async def call_in(
        self, request: VirtualRequest, member: Route, message: Message, session: UpstreamSession | None
    ) -> Answer | UpstreamProblem:
        # MCP 2026-07-28 §Streamable HTTP "Custom Headers from Tool Parameters": an intermediary forwards the
        # Mcp-Param-* headers it does not validate; they go with the call they mirror, to its upstream only.
        params = (
            {name: value for name, value in request.client_headers.items() if name.startswith(PARAM_HEADER_PREFIX)}
            if message.get("method") == "tools/call"
            else {}
        )
        return await call(
            member, request.provider_for(member), request.user_id, message,
            session_id=session.session_id if session is not None else None,
            protocol_version=session.protocol_version if session is not None else request.client_version,
            trace_headers=request.trace, param_headers=params,
        )  # fmt: skip

    async def open_session(self, request: VirtualRequest, member: Route) -> UpstreamSession | UpstreamProblem:
        """Initialize one upstream for a client session that is already open (the client's own ``initialize``
        params are not kept: the gateway introduces itself with the client's protocol version)."""
        version = request.client_version if request.client_version in SESSION_VERSIONS else LATEST_SESSION_VERSION
        params: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-gateway", "version": "1"},
        }
        answer = await self.call_in(
            request, member, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}, None
        )
        result = result_of(answer)
        if result is None or not isinstance(answer, Answer):
            return (
                answer
                if isinstance(answer, UpstreamProblem)
                else UpstreamProblem(member.member or "", cause_of(answer))
            )
        negotiated = result.get("protocolVersion")
        session = UpstreamSession(answer.session_id, negotiated if isinstance(negotiated, str) else version)
        await self.call_in(request, member, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        if len(self._later) >= MAX_LATER_SESSIONS:
            self._later.clear()
        owner = _owner(request)
        if owner is not None:
            self._later[(owner, member.key)] = session
        self._capabilities[member.key] = result.get("capabilities")
        return session


def _owner(request: VirtualRequest) -> str | None:
    """Whose upstream sessions these are: the client's session, or a sessionless client's user (on this route: the
    key the sessions are kept under names the member route)."""
    return request.client_session or (f"~{request.user_id}" if request.stateless else None)


def _refused_stateless(answer: Answer | UpstreamProblem) -> bool:
    """Whether an upstream refused a 2026-07-28 request as one of an older revision does: an HTTP error (no
    session, unknown version) or a JSON-RPC error about the request itself rather than its subject."""
    if isinstance(answer, UpstreamProblem):
        return answer.reconnect is None and answer.cause.startswith(("answered HTTP 4", "gave no JSON-RPC answer"))
    error = (answer.message or {}).get("error")
    return isinstance(error, dict) and error.get("code") in _REFUSALS_OF_STATELESS


def _for_session(message: Message, session: UpstreamSession | None) -> Message:
    """``server/discover`` does not exist before 2026-07-28: in a session it becomes a ``ping`` (its answer is not
    used; the session's initialize told what the upstream offers)."""
    if session is not None and message.get("method") == "server/discover":
        return {"jsonrpc": "2.0", "id": message.get("id", 0), "method": "ping"}
    return message

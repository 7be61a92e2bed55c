"""How a virtual route introduces itself: ``initialize`` (session era) and ``server/discover`` (2026-07-28) fan out to
every upstream at once and merge what they offer; DELETE ends every upstream session behind the client's.

Upstreams that fail are left out (logged); only when none answers does the client get an error. An upstream that
needs the user's account is not a failure: the ``instructions`` say which account to connect and where, and the
tool list holds its connect tool (:mod:`gateway.proxy.unconnected`), so the user sees it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.mcp.codes import INTERNAL_ERROR
from gateway.mcp.jsonrpc import Message, error_response
from gateway.mcp.revisions import LATEST_SESSION_VERSION, SERVER_INFO_META, SESSION_VERSIONS, STATELESS_VERSION
from gateway.proxy.unconnected import connect_note
from gateway.routes import Route
from gateway.virtual.merge import cache_directives, cause_of, merge_capabilities, result_of
from gateway.virtual.state import UpstreamSession, VirtualState
from gateway.virtual.upstream_call import Answer, UpstreamProblem, call, end_session
from gateway.virtual.upstream_sessions import UpstreamSessions, VirtualRequest

logger = logging.getLogger("gateway.virtual")


async def initialize(request: VirtualRequest, message: Message) -> tuple[Message, VirtualState, bool]:
    """The merged answer to the client's ``initialize``, the upstream sessions it opened, and whether the client
    declared URL elicitation (MCP 2025-11-25 §Elicitation)."""
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    assert isinstance(params, dict)
    requested = params.get("protocolVersion")
    version = requested if requested in SESSION_VERSIONS else LATEST_SESSION_VERSION
    members = request.route.members()
    opening = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {**params, "protocolVersion": version}}
    answers = await asyncio.gather(
        *(
            call(
                member, request.provider_for(member), request.user_id, opening,
                session_id=None, protocol_version=None, trace_headers=request.trace,
            )
            for member in members
        )
    )  # fmt: skip
    sessions: dict[str, UpstreamSession] = {}
    capabilities: dict[str, Any] = {}
    instructions: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    ready = []
    for member, answer in zip(members, answers, strict=True):
        name = member.member or member.key
        result = result_of(answer)
        if result is None:
            _note_or_problem(notes, problems, member, answer)
            continue
        negotiated = result.get("protocolVersion") if isinstance(result.get("protocolVersion"), str) else version
        assert isinstance(answer, Answer)
        sessions[name] = UpstreamSession(answer.session_id, str(negotiated))
        merge_capabilities(capabilities, result.get("capabilities"))
        _add_instructions(instructions, name, result)
        # MCP lifecycle: the client side of each upstream session says it is ready.
        ready.append(
            call(
                member, request.provider_for(member), request.user_id,
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                session_id=answer.session_id, protocol_version=str(negotiated), trace_headers=request.trace,
            )
        )  # fmt: skip
    await asyncio.gather(*ready)
    for problem in problems:
        logger.warning("virtual route %s: upstream left out at initialize: %s", request.route.key, problem)
    client_capabilities = params.get("capabilities")
    elicitation = client_capabilities.get("elicitation") if isinstance(client_capabilities, dict) else None
    url_elicitation = isinstance(elicitation, dict) and isinstance(elicitation.get("url"), dict)
    if not sessions and not notes:
        failed = error_response(
            message.get("id"), INTERNAL_ERROR, "no upstream of this route answered", {"upstreams": problems}
        )
        return failed, VirtualState(), url_elicitation
    if notes:
        capabilities.setdefault("tools", {})["listChanged"] = True  # told on the connect tool's own answer
        instructions += notes
    result = {
        "protocolVersion": version,
        "capabilities": capabilities,
        "serverInfo": {"name": request.route.key, "title": request.route.title, "version": "1.0.0"},
    }
    if instructions:
        result["instructions"] = "\n\n".join(instructions)
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": result}, VirtualState(sessions), url_elicitation


async def discover(request: VirtualRequest, upstreams: UpstreamSessions, message: Message) -> Message:
    """MCP 2026-07-28 ``server/discover``: what the upstreams that speak the stateless revision offer, merged (and
    what those of an older revision offered at the initialize this container sent them)."""
    members = request.route.members()
    answers = await asyncio.gather(*(upstreams.send(request, member, message) for member in members))
    capabilities: dict[str, Any] = {}
    instructions: list[str] = []
    notes: list[str] = []
    results = []
    for member, answer in zip(members, answers, strict=True):
        result = result_of(answer)
        offered = upstreams.legacy_capabilities(member)
        if result is None and offered is not None:
            merge_capabilities(capabilities, offered)
            continue
        if isinstance(answer, UpstreamProblem) and answer.reconnect is not None:
            notes.append(f"[{member.member}] {connect_note(str(member.member), member.title, answer.reconnect)}")
            capabilities.setdefault("tools", {})
            continue
        versions = result.get("supportedVersions") if result is not None else None
        if result is None or not isinstance(versions, list) or STATELESS_VERSION not in versions:
            logger.warning("virtual route %s: %s left out of server/discover", request.route.key, member.member)
            continue
        results.append(result)
        merge_capabilities(capabilities, result.get("capabilities"))
        _add_instructions(instructions, str(member.member), result)
    if not results and not capabilities:
        return error_response(message.get("id"), INTERNAL_ERROR, "no upstream of this route answered")
    discovered: dict[str, Any] = {
        "supportedVersions": [STATELESS_VERSION],
        "capabilities": capabilities,
        "_meta": {SERVER_INFO_META: {"name": request.route.key, "version": "1.0.0"}},
        **cache_directives(results, private=request.route.lists_depend_on_caller, complete=not notes),
    }
    instructions += notes
    if instructions:
        discovered["instructions"] = "\n\n".join(instructions)
    return {"jsonrpc": "2.0", "id": message.get("id"), "result": discovered}


async def end_sessions(request: VirtualRequest) -> None:
    """DELETE: end every upstream session behind the client's (MCP §Session Management); best effort."""
    ends = []
    for member in request.route.members():
        session = request.state.upstreams.get(member.member or "")
        if session is not None and session.session_id:
            ends.append(
                end_session(
                    member, request.provider_for(member), request.user_id, session.session_id,
                    session.protocol_version,
                )
            )  # fmt: skip
    await asyncio.gather(*ends)


def _note_or_problem(notes: list[str], problems: list[str], member: Route, answer: Answer | UpstreamProblem) -> None:
    """An upstream without a result: one that needs the user's account gets a note for the user, any other a
    line in the log."""
    name = member.member or member.key
    if isinstance(answer, UpstreamProblem) and answer.reconnect is not None:
        notes.append(f"[{name}] {connect_note(name, member.title, answer.reconnect)}")
    else:
        problems.append(f"{name}: {cause_of(answer)}")


def _add_instructions(instructions: list[str], name: str, result: dict[str, Any]) -> None:
    text = result.get("instructions")
    if isinstance(text, str) and text.strip():
        instructions.append(f"[{name}] {text.strip()}")

"""The proxy's core: relay one client request (POST or DELETE) to the route's upstream on behalf of a user.

Order of work, each step answering on its own when it must:

1. the client's ``Mcp-Session-Id`` is opened for this user and route (404 if it is not theirs, MCP §Session
   Management);
2. the upstream credential comes from the route's provider (none, static headers, OAuth); a provider that needs
   the user to reconnect makes the answer the URL-elicitation error (:mod:`gateway.proxy.reconnect`);
3. the request goes upstream with only the transport's headers, the upstream session id and that credential; an
   upstream 401 gets one retry with renewed credentials;
4. the upstream's session id is sealed before the client sees it.

The whole exchange is bounded by the route's ``timeout_seconds`` (504 after it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from typing import TypeVar

from gateway.proxy.forward import JSON, Relayed, UpstreamFailure, exchange
from gateway.proxy.headers import upstream_request_headers
from gateway.proxy.jsonrpc import INTERNAL_ERROR, PARSE_ERROR, SESSION_NOT_FOUND, Inbound, error_body, inspect
from gateway.proxy.reconnect import reconnect_response
from gateway.proxy.sessions import Session, SessionCodec, UnknownSession
from gateway.proxy.streaming import Streamed, open_stream
from gateway.routes import Route
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError
from gateway.upstream.credentials import ReconnectRequired, UpstreamAuthUnavailable, UpstreamCredentialProvider

logger = logging.getLogger("gateway.proxy")

NO_MESSAGE = Inbound()
Answer = TypeVar("Answer", Relayed, Relayed | Streamed)  # a DELETE carries no JSON-RPC message


def inbound_of(method: str, body: bytes) -> Inbound:
    """What the proxy reads of a request's body (parsed once per request)."""
    return inspect(body) if method == "POST" else NO_MESSAGE


def jsonrpc_error(
    status: int, inbound: Inbound, code: int, message: str, data: dict[str, str] | None = None
) -> Relayed:
    return Relayed(status, {"content-type": JSON}, error_body(inbound, code, message, data))


def upstream_failure(route: Route, inbound: Inbound, status: int, cause: str) -> Relayed:
    """A JSON-RPC error naming the upstream and the cause (502/504); logged without request data."""
    logger.warning("upstream %s %s (HTTP %d to the client)", route.key, cause, status)
    return jsonrpc_error(
        status,
        inbound,
        INTERNAL_ERROR,
        f"upstream MCP server {route.key!r} {cause}",
        {"upstream": route.key, "cause": cause},
    )


async def relay(
    route: Route,
    user_id: str,
    method: str,
    client_headers: Iterable[tuple[str, str]],
    body: bytes,
    codec: SessionCodec,
    session_id: str | None,
    provider: UpstreamCredentialProvider,
    inbound: Inbound | None = None,
    *,
    streaming: bool = False,
) -> Relayed | Streamed:
    """``provider`` is the credential provider of the route's ``auth`` kind (chosen by the composition root);
    ``inbound`` is :func:`inbound_of` the request, when the caller has it already. ``streaming`` (the streaming
    deployment): an event stream is returned as a :class:`Streamed` relayed as it arrives, and ``GET`` is relayed;
    otherwise every answer is whole."""
    inbound = inbound_of(method, body) if inbound is None else inbound
    if inbound.refused is not None:
        return jsonrpc_error(400, inbound, PARSE_ERROR, inbound.refused)
    session: Session | None = None
    if session_id is not None:
        try:
            session = codec.open(session_id, route_key=route.key, user_id=user_id)
        except UnknownSession:
            return jsonrpc_error(404, inbound, SESSION_NOT_FOUND, "unknown MCP session: initialize a new one")
    forwarded = upstream_request_headers(client_headers)
    if session is not None:
        forwarded["mcp-session-id"] = session.upstream_session_id
    url_elicitation = inbound.declares_url_elicitation
    if url_elicitation is None:
        url_elicitation = session is not None and session.url_elicitation

    exits = AsyncExitStack() if streaming else None
    relayed = await _exchange_or_failure(
        provider, route, user_id, method, forwarded, body, inbound, exits, url_elicitation=url_elicitation
    )
    if exits is not None and not isinstance(relayed, Streamed):
        await exits.aclose()  # a whole answer was read: the upstream connection is done (a stream closes its own)
    upstream_session_id = relayed.headers.get("mcp-session-id")
    if upstream_session_id:
        sealed = codec.seal(Session(upstream_session_id, url_elicitation), route_key=route.key, user_id=user_id)
        relayed.headers["mcp-session-id"] = sealed
    return relayed


async def _exchange_or_failure(
    provider: UpstreamCredentialProvider,
    route: Route,
    user_id: str,
    method: str,
    forwarded: dict[str, str],
    body: bytes,
    inbound: Inbound,
    exits: AsyncExitStack | None,
    *,
    url_elicitation: bool,
) -> Relayed | Streamed:
    """The exchange within the route's timeout (a stream's body has its own deadline), or the answer that names
    why it failed. ``exits`` (streaming) holds the upstream connection."""
    seconds = route.server.timeout_seconds
    try:
        async with asyncio.timeout(seconds):
            deadline = asyncio.get_running_loop().time() + seconds
            if exits is None:
                return await exchange_with_credentials(provider, route, user_id, method, forwarded, body, inbound)
            return await stream_with_credentials(
                provider, route, user_id, method, forwarded, body, inbound, exits=exits, deadline=deadline
            )
    except ReconnectRequired as required:
        logger.info("upstream %s needs the user to reconnect: %s", route.key, required.reason)
        return reconnect_response(route, inbound, required, url_elicitation=url_elicitation)
    except UpstreamFailure as failure:
        return upstream_failure(route, inbound, failure.status, failure.cause)
    except TimeoutError:
        return upstream_failure(route, inbound, 504, f"did not answer within {seconds:g} s")
    except StorageError:
        logger.exception("credential store failed for upstream %s", route.key)
        return jsonrpc_error(503, inbound, INTERNAL_ERROR, "the gateway's credential store is unavailable; retry later")
    except SecretUnavailableError as problem:
        logger.error("upstream %s: %s", route.key, problem)  # names the secret reference, never a value
        return upstream_failure(route, inbound, 502, "cannot be called: the gateway could not read its credential")
    except UpstreamAuthUnavailable as unavailable:
        # Transient (the upstream's authorization server is unreachable, or another container's refresh is late):
        # a failure of the upstream side like the others, never a 500. The reason goes to the log only.
        logger.warning("upstream %s: %s", route.key, unavailable.reason)
        return upstream_failure(
            route, inbound, 502, "cannot be called now: its expired credential could not be refreshed; retry later"
        )
    except BaseException:
        if exits is not None:
            await exits.aclose()
        raise


async def exchange_with_credentials(
    provider: UpstreamCredentialProvider,
    route: Route,
    user_id: str,
    method: str,
    forwarded: dict[str, str],
    body: bytes,
    inbound: Inbound,
) -> Relayed:
    """One exchange with ``route``'s upstream under the user's credential, renewed once after an upstream 401,
    read whole. Raises what the credential provider raises, or :class:`UpstreamFailure`."""

    async def attempt(credentials: dict[str, str]) -> Relayed:
        return await exchange(route, method, forwarded, credentials, body, inbound)

    return await _with_renewal(provider, route, user_id, attempt)


async def stream_with_credentials(
    provider: UpstreamCredentialProvider,
    route: Route,
    user_id: str,
    method: str,
    forwarded: dict[str, str],
    body: bytes,
    inbound: Inbound,
    *,
    exits: AsyncExitStack,
    deadline: float,
) -> Relayed | Streamed:
    """As :func:`exchange_with_credentials`, but an event stream comes back as a :class:`Streamed` read until
    ``deadline`` (the streaming deployment); ``exits`` holds the upstream connections."""

    async def attempt(credentials: dict[str, str]) -> Relayed | Streamed:
        return await open_stream(route, method, forwarded, credentials, body, inbound, exits=exits, deadline=deadline)

    return await _with_renewal(provider, route, user_id, attempt)


async def _with_renewal(
    provider: UpstreamCredentialProvider,
    route: Route,
    user_id: str,
    attempt: Callable[[dict[str, str]], Awaitable[Answer]],
) -> Answer:
    credentials = await provider.headers(route, user_id)
    relayed = await attempt(credentials)
    if relayed.status_code != 401:
        return relayed
    # The upstream refused the credential: renew it once (refresh, re-read a rotated secret), then give up.
    renewed = await provider.after_unauthorized(route, user_id)
    if not renewed and not credentials:
        raise UpstreamFailure(502, "requires authorization, but the route is configured to send no credentials")
    if renewed == credentials:
        raise UpstreamFailure(502, "refused the gateway's credentials (HTTP 401)")
    relayed = await attempt(renewed)
    if relayed.status_code == 401:
        raise UpstreamFailure(502, "refused the gateway's credentials (HTTP 401), also after renewing them")
    return relayed

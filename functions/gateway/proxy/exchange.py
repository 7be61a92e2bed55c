"""One message-level exchange with a route's upstream, on behalf of a user: a :class:`~gateway.mcp.payload.Payload`
goes out under the user's credential (renewed once after an upstream 401), within the route's timeout, and what
comes back is the answer — whole (:func:`exchange`: the buffered deployment, and every call of a virtual route) or as
a stream (:func:`open_exchange`: the streaming deployment) — or an :class:`ExchangeFailed` saying why there is none.

The single-upstream proxy (:mod:`gateway.proxy.relay`) and the virtual server (:mod:`gateway.virtual.upstream_call`)
both exchange through here, so an upstream behind a virtual route behaves exactly as on a route of its own. Beneath
it, :mod:`gateway.proxy.forward` and :mod:`gateway.proxy.streaming` carry the bytes over
:mod:`gateway.proxy.http1_client`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

from gateway.proxy.answer import Outgoing, Relayed
from gateway.proxy.forward import UpstreamFailure, forward
from gateway.proxy.streaming import Streamed, open_stream
from gateway.routes import Route
from gateway.secrets import SecretUnavailableError
from gateway.storage.ports import StorageError
from gateway.upstream.cipher import CipherUnavailable
from gateway.upstream.credentials import ReconnectRequired, UpstreamAuthUnavailable, UpstreamCredentialProvider

logger = logging.getLogger("gateway.proxy")

Answer = TypeVar("Answer", Relayed, Relayed | Streamed)


@dataclass(frozen=True, slots=True)
class ExchangeFailed:
    """Why an exchange has no answer to relay. ``status`` is what a plain route's client gets (502 upstream, 503
    gateway, 504 timeout); ``cause`` completes "upstream MCP server 'x' …" unless ``gateway_fault`` (then it is the
    whole message: the gateway's own store failed, not the upstream). ``reconnect``: the user must connect the
    upstream account first."""

    status: int
    cause: str
    reconnect: ReconnectRequired | None = None
    gateway_fault: bool = False


async def exchange(
    provider: UpstreamCredentialProvider, outgoing: Outgoing, *, decode: bool = False
) -> Relayed | ExchangeFailed:
    """The whole answer of the route's upstream to ``outgoing`` (a POST; or a DELETE), within the route's timeout.
    ``decode``: the answer's JSON-RPC messages are read into :attr:`Relayed.messages`."""

    async def attempt(credentials: dict[str, str]) -> Relayed:
        return await forward(outgoing, credentials, decode=decode)

    try:
        async with asyncio.timeout(outgoing.route.server.timeout_seconds):
            return await _with_renewal(provider, outgoing, attempt)
    except (TimeoutError, *_FAILURES) as error:
        return failed(outgoing.route, error)


async def open_exchange(
    provider: UpstreamCredentialProvider, outgoing: Outgoing, *, decode: bool = False
) -> Relayed | Streamed | ExchangeFailed:
    """As :func:`exchange`, but an event stream comes back as a :class:`Streamed` relayed as it arrives, read until
    the route's deadline (the streaming deployment). The upstream connection is closed when a whole answer has been
    read, and by the stream itself when it ends."""
    seconds = outgoing.route.server.timeout_seconds
    exits = AsyncExitStack()
    try:
        async with asyncio.timeout(seconds):
            deadline = asyncio.get_running_loop().time() + seconds

            async def attempt(credentials: dict[str, str]) -> Relayed | Streamed:
                return await open_stream(outgoing, credentials, exits=exits, deadline=deadline, decode=decode)

            answer = await _with_renewal(provider, outgoing, attempt)
    except (TimeoutError, *_FAILURES) as error:
        await exits.aclose()
        return failed(outgoing.route, error)
    except BaseException:
        await exits.aclose()
        raise
    if not isinstance(answer, Streamed):
        await exits.aclose()  # a whole answer was read: the upstream connection is done (a stream closes its own)
    return answer


async def credentials_ready(provider: UpstreamCredentialProvider, route: Route, user_id: str) -> ExchangeFailed | None:
    """Whether the user's credential for ``route``'s upstream is usable now, without calling the upstream: None, or
    the failure an exchange would have had (a connect tool asks this, :mod:`gateway.proxy.unconnected`)."""
    try:
        await provider.headers(route, user_id)
    except _FAILURES as error:
        return failed(route, error)
    return None


_FAILURES = (
    ReconnectRequired,
    UpstreamFailure,
    StorageError,
    CipherUnavailable,
    SecretUnavailableError,
    UpstreamAuthUnavailable,
)


def failed(route: Route, error: BaseException) -> ExchangeFailed:
    """The failure an exception of the exchange stands for, logged without request data or credentials."""
    if isinstance(error, ReconnectRequired):
        logger.info("upstream %s needs the user to reconnect: %s", route.key, error.reason)
        return ExchangeFailed(200, f"needs the user to connect it: {error.reason}", reconnect=error)
    if isinstance(error, UpstreamFailure):
        cause = error.cause
        logger.warning("upstream %s %s (HTTP %d to the client)", route.key, cause, error.status)
        return ExchangeFailed(error.status, cause)
    if isinstance(error, TimeoutError):
        cause = f"did not answer within {route.server.timeout_seconds:g} s"
        logger.warning("upstream %s %s", route.key, cause)
        return ExchangeFailed(504, cause)
    if isinstance(error, StorageError):
        logger.exception("credential store failed for upstream %s", route.key, exc_info=error)
        return ExchangeFailed(503, "the gateway's credential store is unavailable; retry later", gateway_fault=True)
    if isinstance(error, CipherUnavailable):
        logger.error("upstream %s: its credential could not be decrypted: %s", route.key, error)
        return ExchangeFailed(
            503,
            "the gateway could not decrypt the upstream credential (its key service is unavailable); retry later",
            gateway_fault=True,
        )
    if isinstance(error, SecretUnavailableError):
        logger.error("upstream %s: %s", route.key, error)  # names the secret reference, never a value
        return ExchangeFailed(502, "cannot be called: the gateway could not read its credential")
    assert isinstance(error, UpstreamAuthUnavailable)
    # Transient (the upstream's authorization server is unreachable, or another container's refresh is late): a
    # failure of the upstream side like the others, never a 500. The reason goes to the log only.
    logger.warning("upstream %s: %s", route.key, error.reason)
    return ExchangeFailed(502, "cannot be called now: its expired credential could not be refreshed; retry later")


async def _with_renewal(
    provider: UpstreamCredentialProvider, outgoing: Outgoing, attempt: Callable[[dict[str, str]], Awaitable[Answer]]
) -> Answer:
    route, user_id = outgoing.route, outgoing.user_id
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

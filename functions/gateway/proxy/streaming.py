"""The streaming deployment's exchange with an upstream: an event stream is relayed event by event as the upstream
sends it, instead of being read whole (:mod:`gateway.proxy.forward`, the buffered deployment).

What changes for the client (MCP 2025-11-25 §Streamable HTTP):

- a POST's SSE answer reaches it as it is written, so progress and logging notifications arrive during a long tool
  call, and a server-to-client request in the middle of a call (sampling, elicitation) reaches the client, which
  answers it with a POST of its own while the call's stream stays open;
- ``GET`` opens the upstream's own stream for server-initiated messages, and ``GET`` with ``Last-Event-ID`` resumes a
  stream the upstream closed early (SSE polling): the client resumes it itself, as the transport intends, so the
  proxy does not complete streams on its behalf;
- a failure in the middle of a stream (the route's timeout, a broken connection) ends it with a JSON-RPC error for
  every request of the POST still unanswered, naming the upstream, so the client never waits for an answer that
  cannot come.

Answers that are not event streams are read whole and checked exactly as in the buffered deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from gateway.mcp import sse
from gateway.mcp.codes import INTERNAL_ERROR
from gateway.mcp.jsonrpc import RequestId, error_response
from gateway.mcp.outcome import outcomes_by_id
from gateway.proxy.answer import EVENT_STREAM, Outgoing, Relayed, media_type
from gateway.proxy.forward import MAX_CONNECT_SECONDS, checked_answer, upstream_errors, upstream_target
from gateway.proxy.headers import client_response_headers
from gateway.proxy.http1_client import BodyTooLarge, UpstreamHttpError, UpstreamStream, upstream_pool
from gateway.routes import Route

# No Lambda payload limit applies to a streamed response; this bounds what one stream may carry (API Gateway
# throttles a stream to 2 MB/s beyond its first 10 MB) and what a whole answer may be.
STREAM_LIMIT_BYTES = 256 * 1024 * 1024
WHOLE_ANSWER_LIMIT_BYTES = 10 * 1024 * 1024


@dataclass(slots=True)
class StreamWatch:
    """What the proxy learns of a relayed event stream as it passes: which requests it answered and how each
    answer ended (for the audit trail)."""

    pending: set[RequestId]
    outcomes: dict[RequestId, str] = field(default_factory=dict)
    resumable: bool = False  # an event carried an ``id``: a client can resume the stream after it ends
    _parser: sse.IncrementalParser = field(default_factory=sse.IncrementalParser)

    def feed(self, chunk: bytes) -> None:
        try:
            stream = self._parser.feed(chunk)
        except UnicodeDecodeError:
            return  # the client gets the bytes as sent; the audit calls the call an error
        self.resumable = self.resumable or stream.last_event_id is not None
        answered = outcomes_by_id(sse.messages(stream, responses_only=True))
        self.pending.difference_update(answered)
        self.outcomes.update(answered)


@dataclass(slots=True)
class Streamed:
    """An answer relayed as it arrives: ``body`` yields the upstream's bytes (and closes the upstream connection
    when it ends or is closed); ``watch`` describes what has passed so far."""

    status_code: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]
    watch: StreamWatch


async def open_stream(
    outgoing: Outgoing,
    credentials: dict[str, str],
    *,
    exits: AsyncExitStack,
    deadline: float,
    decode: bool = False,
) -> Relayed | Streamed:
    """Send a POST, GET or DELETE and return the answer: an event stream as a :class:`Streamed` whose body is read
    until ``deadline`` (the event loop's clock), anything else whole and checked. The upstream connection is
    registered on ``exits``, which the caller closes once it is done with the answer (a :class:`Streamed` body
    closes it itself when it ends)."""
    route, method, payload = outgoing.route, outgoing.method, outgoing.payload
    target = upstream_target(route)
    seconds = route.server.timeout_seconds
    with upstream_errors():
        response = await exits.enter_async_context(
            upstream_pool().stream(
                target.origin,
                method,
                {**outgoing.headers, **credentials},
                payload.body,
                max_body=STREAM_LIMIT_BYTES,
                connect_timeout=min(MAX_CONNECT_SECONDS, seconds),
            )
        )
    content_type = media_type(response.headers.get("content-type"))
    streams = method == "GET" or (method == "POST" and payload.expects_response)
    if response.status == 200 and content_type == EVENT_STREAM and streams:
        watch = StreamWatch(set(payload.request_ids))
        relayed = _relay_events(route, response, watch, exits, deadline)
        return Streamed(200, client_response_headers(response.headers), relayed, watch)
    content = await _read_whole(response)
    return checked_answer(outgoing, response.status, response.headers, content, decode=decode)


async def _read_whole(response: UpstreamStream) -> bytes:
    parts: list[bytes] = []
    size = 0
    with upstream_errors():
        async for chunk in response.chunks():
            size += len(chunk)
            if size > WHOLE_ANSWER_LIMIT_BYTES:
                raise BodyTooLarge
            parts.append(chunk)
    return b"".join(parts)


async def _relay_events(
    route: Route,
    response: UpstreamStream,
    watch: StreamWatch,
    exits: AsyncExitStack,
    deadline: float,
) -> AsyncIterator[bytes]:
    """The upstream's bytes as they arrive, until it ends the stream or ``deadline``; a stream cut short ends with
    an error event for each request still unanswered. The time limit covers each read, never the client's
    handling of a chunk (a timeout must not fire outside this generator)."""
    chunks = response.chunks()
    cause: str | None = None
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                cause = f"did not answer within {route.server.timeout_seconds:g} s"
                break
            except BodyTooLarge:
                cause = f"sent more than {STREAM_LIMIT_BYTES // (1024 * 1024)} MB on one stream"
                break
            except UpstreamHttpError as error:
                cause = f"broke the exchange: {error}"
                break
            watch.feed(chunk)
            yield chunk
        if watch.pending and cause is None and not watch.resumable:
            # Ended without an answer and without an event id to resume from (SSE polling): none will come.
            cause = "closed its event stream before answering the request"
        if cause is not None and watch.pending:
            yield _error_events(route, watch, cause)
    finally:
        await exits.aclose()


def _error_events(route: Route, watch: StreamWatch, cause: str) -> bytes:
    """One SSE event per unanswered request: the JSON-RPC error the buffered deployment would have answered."""
    message = f"upstream MCP server {route.key!r} {cause}"
    data = {"upstream": route.key, "cause": cause}
    events = []
    for request_id in sorted(watch.pending, key=str):
        events.append("\n\n" + sse.event(error_response(request_id, INTERNAL_ERROR, message, data)))
        watch.outcomes[request_id] = "error"
    watch.pending.clear()
    return "".join(events).encode()

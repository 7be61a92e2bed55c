"""The buffered deployment's transport to a route's upstream over Streamable HTTP: send a payload, read the answer
within the Lambda response limit, complete an SSE response the upstream closed early (SSE polling), and classify
what came back. :mod:`gateway.proxy.exchange` calls it with the user's credentials; :mod:`gateway.proxy.http1_client`
moves the bytes.

Anything the client cannot use is an :class:`UpstreamFailure` naming the cause, which the proxy answers as a
JSON-RPC error with 502 (unreachable, misbehaving, non-MCP content, too large) or 504 (timed out): never a hang
or a 500.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gateway.mcp import sse
from gateway.mcp.codes import INTERNAL_ERROR
from gateway.mcp.jsonrpc import Message, RequestId, is_error_response
from gateway.proxy.answer import EVENT_STREAM, JSON, Outgoing, Relayed, decoded_json, error_answer, media_type
from gateway.proxy.headers import RESUME_HEADERS, client_response_headers
from gateway.proxy.http1_client import (
    BodyTooLarge,
    ConnectFailed,
    Origin,
    UpstreamHttpError,
    UpstreamResponse,
    upstream_pool,
)
from gateway.routes import Route

__all__ = ["EVENT_STREAM", "JSON", "Relayed", "UpstreamFailure", "checked_answer", "forward", "media_type"]

# Lambda's synchronous response payload limit is 6 MB for the whole JSON result; keep room for the envelope and
# headers. A text body is embedded as a JSON string (escaped), a binary one base64-encoded (+33 %).
LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
BODY_BUDGET_BYTES = LAMBDA_RESPONSE_LIMIT_BYTES - 64 * 1024
TEXT_TYPES = ("text/", "application/json")  # what Mangum returns as text (the rest is base64-encoded)

DEFAULT_RETRY_MS = 1000  # SSE reconnection delay when the upstream names none (the SDKs' default)
MAX_RESUMES = 50
MAX_CONNECT_SECONDS = 5.0


class UpstreamFailure(Exception):
    """The upstream could not be used; ``status`` is what the client gets (502 or 504)."""

    def __init__(self, status: int, cause: str) -> None:
        super().__init__(cause)
        self.status = status
        self.cause = cause


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    route: Route
    origin: Origin


_targets: dict[int, UpstreamTarget] = {}


def upstream_target(route: Route) -> UpstreamTarget:
    """The parsed upstream URL of a route, made once per route object (not per request)."""
    target = _targets.get(id(route))
    if target is None or target.route is not route:
        target = UpstreamTarget(route, Origin.parse(str(route.server.upstream)))
        _targets[id(route)] = target
    return target


def encoded_size(body: bytes, content_type: str) -> int:
    """The bytes ``body`` takes in the Lambda result: a JSON string (escaped) for text, base64 otherwise."""
    if any(kind in content_type for kind in TEXT_TYPES):
        if len(body) * 6 + 2 <= BODY_BUDGET_BYTES:  # even if every byte were escaped as \\u00XX
            return len(body) + 2
        try:
            return len(json.dumps(body.decode()))
        except UnicodeDecodeError:
            pass
    return len(base64.b64encode(body))


@contextmanager
def upstream_errors() -> Iterator[None]:
    """The HTTP client's failures as what the client gets (502 naming the cause)."""
    try:
        yield
    except BodyTooLarge:
        raise UpstreamFailure(502, _too_large()) from None
    except ConnectFailed as error:
        raise UpstreamFailure(502, f"is unreachable ({error})") from None
    except UpstreamHttpError as error:
        raise UpstreamFailure(502, f"broke the exchange: {error}") from None


async def _send(target: UpstreamTarget, method: str, headers: dict[str, str], body: bytes) -> UpstreamResponse:
    """Send one request and read the whole answer, refusing to buffer more than the response budget. The caller
    bounds the whole exchange with the route's timeout (:func:`gateway.proxy.relay.relay`)."""
    seconds = target.route.server.timeout_seconds
    with upstream_errors():
        return await upstream_pool().request(
            target.origin,
            method,
            headers,
            body,
            max_body=BODY_BUDGET_BYTES,
            connect_timeout=min(MAX_CONNECT_SECONDS, seconds),
        )


def _too_large() -> str:
    return f"answered more than the {LAMBDA_RESPONSE_LIMIT_BYTES // (1024 * 1024)} MB Lambda response limit allows"


async def forward(outgoing: Outgoing, credentials: dict[str, str], *, decode: bool = False) -> Relayed:
    """Send a POST or DELETE and return what the client should get, whole (the buffered deployment). A 401 is
    returned as is (the caller owns the credential retry); the other answers are checked (MCP 2025-11-25
    §Streamable HTTP "Sending Messages"). An SSE answer the upstream closed before answering is completed here.
    ``decode``: the answer's JSON-RPC messages are read (once) into :attr:`Relayed.messages`."""
    target = upstream_target(outgoing.route)
    payload = outgoing.payload
    response = await _send(target, outgoing.method, {**outgoing.headers, **credentials}, payload.body)
    content_type = media_type(response.headers.get("content-type"))
    streamed = response.status == 200 and outgoing.method == "POST" and content_type == EVENT_STREAM
    if streamed and payload.expects_response:
        content, messages = await _complete_stream(target, response.body, outgoing, credentials, decode)
        if encoded_size(content, content_type) > BODY_BUDGET_BYTES:
            raise UpstreamFailure(502, _too_large())
        return Relayed(200, client_response_headers(response.headers), content, messages)
    return checked_answer(outgoing, response.status, response.headers, response.body, decode=decode)


def checked_answer(
    outgoing: Outgoing, status: int, upstream_headers: dict[str, str], content: bytes, *, decode: bool = False
) -> Relayed:
    """A whole answer (not an event stream to relay) as the client should get it, or :class:`UpstreamFailure`."""
    route, payload = outgoing.route, outgoing.payload
    if status == 401:
        return Relayed(401, {}, b"")
    if status >= 500:
        raise UpstreamFailure(502, f"answered HTTP {status}")
    if 300 <= status < 400:
        raise UpstreamFailure(502, f"answered with a redirect (HTTP {status}), which the gateway does not follow")
    content_type = media_type(upstream_headers.get("content-type"))
    headers = client_response_headers(upstream_headers)
    messages = decoded_json(content) if (decode and content_type == JSON) or status == 404 else None
    if status == 200 and outgoing.method == "POST" and payload.expects_response:
        if content_type != JSON:
            shown = content_type or "none"
            raise UpstreamFailure(502, f"answered with non-MCP content (content type {shown})")
    elif status == 404 and "mcp-session-id" not in outgoing.headers and not is_error_response(list(messages or ())):
        # A 404 carrying a JSON-RPC error is the MCP server's own answer (MCP 2026-07-28 §Streamable HTTP, SEP-2575: a
        # method the server does not implement, or one the revision removed, gets HTTP 404 with -32601): relayed as is.
        # Anything else without a session (HTML, an empty body) means the URL is not an MCP endpoint.
        raise UpstreamFailure(502, "answered HTTP 404: is the configured upstream URL an MCP endpoint?")
    elif status >= 400 and content and content_type != JSON:
        # Keep the status (400, 405, 406... mean something to the client) but not a body it cannot parse.
        cause = f"answered HTTP {status}"
        data = {"upstream": route.key, "cause": cause}
        replaced = error_answer(status, payload, INTERNAL_ERROR, f"upstream MCP server {route.key!r} {cause}", data)
        return Relayed(status, {**headers, **replaced.headers}, replaced.body, replaced.messages)
    if encoded_size(content, content_type) > BODY_BUDGET_BYTES:
        raise UpstreamFailure(502, _too_large())
    return Relayed(status, headers, content, messages if decode and content_type == JSON else None)


async def _complete_stream(
    target: UpstreamTarget, first: bytes, outgoing: Outgoing, credentials: dict[str, str], decode: bool
) -> tuple[bytes, tuple[Message, ...] | None]:
    """The SSE body holding the answer to every request of the payload, resuming the stream upstream as needed, and
    (``decode``) the messages it carries.

    MCP 2025-11-25 §Streamable HTTP "Resumability and Redelivery": a server that sent an event ``id`` MAY close the
    stream before answering; the client resumes with ``GET`` + ``Last-Event-ID`` after the ``retry`` delay, and the
    server replays what followed that event on the new stream.
    """
    pending = set(outgoing.payload.request_ids)
    try:
        text = first.decode()
    except UnicodeDecodeError:
        raise UpstreamFailure(502, "sent an event stream that is not UTF-8") from None
    stream = sse.parse(text)
    messages = sse.messages(stream, responses_only=not decode)
    pending -= sse.answered(messages)
    if not pending:
        return first, tuple(messages) if decode else None  # relayed exactly as received
    parts = [stream.complete]
    size = len(stream.complete)
    last_event_id = stream.last_event_id
    retry_ms = stream.retry_ms
    resume_headers = {name: value for name, value in outgoing.headers.items() if name in RESUME_HEADERS}
    resume_headers.update(credentials)
    resume_headers["accept"] = EVENT_STREAM
    for _ in range(MAX_RESUMES):
        if not last_event_id:
            raise UpstreamFailure(502, "closed its event stream before answering the request")
        await asyncio.sleep((DEFAULT_RETRY_MS if retry_ms is None else retry_ms) / 1000)
        resumed = await _resume(target, {**resume_headers, "last-event-id": last_event_id}, pending, size, decode)
        parts.append(resumed.complete)
        messages += resumed.messages
        size += len(resumed.complete)
        pending -= sse.answered(resumed.messages)
        if not pending:
            return "".join(parts).encode(), tuple(messages) if decode else None
        last_event_id = resumed.last_event_id or last_event_id
        retry_ms = resumed.retry_ms if resumed.retry_ms is not None else retry_ms
    raise UpstreamFailure(502, f"did not answer after {MAX_RESUMES} resumptions of its event stream")


@dataclass(frozen=True, slots=True)
class _Resumed:
    complete: str  # the complete events received on the resumed stream
    messages: list[Message]  # the messages they carry (responses only, unless decoding)
    last_event_id: str | None
    retry_ms: int | None


async def _resume(
    target: UpstreamTarget, headers: dict[str, str], pending: set[RequestId], size: int, decode: bool
) -> _Resumed:
    """One resumed stream (``GET`` + ``Last-Event-ID``), read as its events arrive until the responses to every
    ``pending`` request are in it or the upstream ends it. The server may keep a resumed stream open after it
    replayed what the client missed (MCP 2025-11-25 §Streamable HTTP "Resumability and Redelivery": it is a GET
    stream like any other), so waiting for its end would only wait for the route's timeout."""
    texts: list[str] = []
    messages: list[Message] = []
    last_event_id: str | None = None
    retry_ms: int | None = None
    parser = sse.IncrementalParser()
    seconds = target.route.server.timeout_seconds
    with upstream_errors():
        async with upstream_pool().stream(
            target.origin,
            "GET",
            headers,
            b"",
            max_body=BODY_BUDGET_BYTES,
            connect_timeout=min(MAX_CONNECT_SECONDS, seconds),
        ) as response:
            if response.status != 200 or media_type(response.headers.get("content-type")) != EVENT_STREAM:
                raise UpstreamFailure(
                    502, f"closed its event stream early and refused to resume it (HTTP {response.status})"
                )
            async for chunk in response.chunks():
                try:
                    stream = parser.feed(chunk)
                except UnicodeDecodeError:
                    raise UpstreamFailure(502, "sent an event stream that is not UTF-8") from None
                if not stream.complete:
                    continue
                texts.append(stream.complete)
                size += len(stream.complete)
                if size > BODY_BUDGET_BYTES:
                    raise UpstreamFailure(502, _too_large())
                messages += sse.messages(stream, responses_only=not decode)
                last_event_id = stream.last_event_id or last_event_id
                retry_ms = stream.retry_ms if stream.retry_ms is not None else retry_ms
                if pending <= sse.answered(messages):
                    break  # every request is answered: the rest of the stream is not this exchange's
    return _Resumed("".join(texts), messages, last_event_id, retry_ms)

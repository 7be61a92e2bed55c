"""Server-Sent Events as the MCP Streamable HTTP transport uses them (HTML Living Standard §9.2 "Server-sent events").

The proxy relays an upstream's SSE response as received. It parses it only to know whether the response to the
client's request is in it, and, when it is not, whether the upstream closed the stream on purpose so the client can
resume it: MCP 2025-11-25 §Streamable HTTP (SSE polling, SEP-1699) lets a server close a POST's stream after it sent
an event with an ``id`` (usually a "priming" event with empty data and a ``retry`` field); the client then resumes
with ``GET`` and ``Last-Event-ID``. A buffered deployment cannot let the client do that, so the proxy resumes on its
behalf and returns the whole exchange as one body.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from gateway import safe_json
from gateway.mcp.jsonrpc import Message, RequestId, dumps, flatten, response_ids

_LINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ParsedStream:
    complete: str  # the text up to the end of the last complete event (an unterminated last event is dropped)
    data: list[str]  # the data of each complete event, in order
    last_event_id: str | None  # the last ``id`` field seen in a complete event (the SSE "last event ID buffer")
    retry_ms: int | None  # the last valid ``retry`` field


def parse(text: str, *, stream_start: bool = True) -> ParsedStream:
    """Parse a (possibly cut-off) event stream. Follows the standard's field rules: one space after the colon is
    dropped, ``data`` lines join with ``\\n``, an ``id`` containing NUL is ignored, ``retry`` must be all digits,
    and a blank line dispatches the event. A leading BOM is dropped only at the ``stream_start``."""
    if stream_start and text.startswith("\ufeff"):
        text = text[1:]
    data: list[str] = []
    last_event_id: str | None = None
    retry_ms: int | None = None
    event_data: list[str] = []
    event_id: str | None = None
    has_fields = False
    complete_end = 0
    position = 0
    for match in _LINE.finditer(text):
        line = text[position : match.start()]
        position = match.end()
        if not line:
            if has_fields:
                if event_id is not None:
                    last_event_id = event_id
                if event_data:
                    data.append("\n".join(event_data))
            event_data, event_id, has_fields = [], None, False
            complete_end = position
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        has_fields = True
        if name == "data":
            event_data.append(value)
        elif name == "id":
            if "\0" not in value:
                event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            retry_ms = int(value)
    return ParsedStream(text[:complete_end], data, last_event_id, retry_ms)


class IncrementalParser:
    """An event stream parsed as it arrives: :meth:`feed` takes the next bytes and returns the events they complete
    (``complete`` is their text; an event still cut off waits for the next bytes). Raises ``UnicodeDecodeError``
    for a stream that is not UTF-8 (the standard's only encoding)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._pending = ""
        self._started = False

    def feed(self, data: bytes) -> ParsedStream:
        text = self._pending + self._decoder.decode(data)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        stream = parse(text, stream_start=False)
        self._pending = text[len(stream.complete) :]
        return stream


def messages(stream: ParsedStream, *, responses_only: bool = False) -> list[Message]:
    """The JSON-RPC messages carried by the stream's events, in order (data that is not JSON is skipped). With
    ``responses_only``, events that cannot hold a response (no ``"id"``: notifications, priming events) are not
    decoded at all."""
    found: list[Message] = []
    for data in stream.data:
        if responses_only and '"id"' not in data:
            continue
        if not data.strip():
            continue
        try:
            decoded = safe_json.loads(data)
        except ValueError:
            continue
        found += flatten(decoded)
    return found


def answered(found: list[Message]) -> set[RequestId]:
    """The ids of the JSON-RPC responses among messages read from a stream."""
    return set(response_ids(found))


def answered_ids(stream: ParsedStream) -> set[RequestId]:
    """The ids of the JSON-RPC responses carried by the stream's events (other messages are ignored)."""
    return answered(messages(stream, responses_only=True))


def event(message: Message) -> str:
    """One SSE event carrying one JSON-RPC message (MCP §Streamable HTTP: ``event: message``). Compact JSON holds no
    line break, so the message is one ``data`` line."""
    return f"event: message\ndata: {dumps(message).decode()}\n\n"

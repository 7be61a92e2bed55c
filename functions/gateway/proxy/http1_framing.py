"""HTTP/1.1 message framing for the proxy's upstream client (RFC 9112): the request head, the response head, and the
body by its framing (``Content-Length``, chunked, or close-delimited, §6.3), decoded (gzip, deflate) within a size
limit. Bytes only: :mod:`gateway.proxy.http1_client` owns the connections.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator

MAX_HEADER_BYTES = 64 * 1024


class UpstreamHttpError(Exception):
    """The exchange failed (connection refused or reset, invalid HTTP, unsupported encoding)."""


class ConnectFailed(UpstreamHttpError):
    """No connection could be made."""


class BodyTooLarge(UpstreamHttpError):
    """The response body exceeds the caller's limit."""


class StaleConnection(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


def request_head(method: str, target: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The request line and header fields (RFC 9112 §3, §5); a value or name that would split the head is refused."""
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise UpstreamHttpError(f"refusing to send a header with a line break or colon in it ({name[:40]!r})")
        lines.append(f"{name}: {value}")
    lines.append("accept-encoding: gzip")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise UpstreamHttpError("refusing to send a header that is not Latin-1 (RFC 9110 §5.5)") from None


async def read_head(reader: asyncio.StreamReader, *, reused: bool) -> tuple[int, str, dict[str, str]]:
    """The status line and header fields of the final response (1xx interim responses skipped, RFC 9110 §15.2)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if reused and not error.partial:
                raise StaleConnection from None
            raise UpstreamHttpError("the connection closed before a complete response") from None
        except asyncio.LimitOverrunError:
            raise UpstreamHttpError("the response headers are too large") from None
        except ConnectionError:
            if reused:
                raise StaleConnection from None
            raise UpstreamHttpError("the connection was reset before a response") from None
        status, version, headers = parse_head(head)
        if status >= 200 or status == 101:
            return status, version, headers


async def read_body(
    reader: asyncio.StreamReader, method: str, status: int, headers: dict[str, str], max_body: int
) -> tuple[bytes, bool]:
    """The whole raw (still encoded) body, ``max_body`` bytes at most, and whether its end was framed (RFC 9112
    §6.3); a close-delimited body leaves the connection spent."""
    if bodiless(method, status):
        return b"", True
    length_header = headers.get("content-length")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await read_chunked(reader, max_body), True
    if length_header is not None:
        length = content_length(length_header)
        if length > max_body:
            raise BodyTooLarge
        return await read_exactly(reader, length), True
    return await read_to_end(reader, max_body), False


def parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise UpstreamHttpError("not an HTTP/1.x response")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise UpstreamHttpError("a malformed response header")
        headers[name.strip().lower()] = value.strip()
    return int(code), version, headers


def keep_alive(version: str, connection: str) -> bool:
    tokens = {token.strip().lower() for token in connection.split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def read_exactly(reader: asyncio.StreamReader, length: int) -> bytes:
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise UpstreamHttpError("the connection closed in the middle of the body") from None


async def chunk_size(reader: asyncio.StreamReader) -> int:
    """The size of the next chunk (RFC 9112 §7.1); after the last chunk (size 0) the trailer fields are read and
    ignored."""
    line = await reader.readline()
    if not line.endswith(b"\n"):
        raise UpstreamHttpError("the connection closed in the middle of the body")
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise UpstreamHttpError("an invalid chunk size") from None
    if size == 0:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailer fields, ignored
    return size


async def read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while size := await chunk_size(reader):
        total += size
        if total > max_body:
            raise BodyTooLarge
        chunks.append(await read_exactly(reader, size))
        await read_exactly(reader, 2)  # CRLF after the chunk
    return b"".join(chunks)


async def read_to_end(reader: asyncio.StreamReader, max_body: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
        if total > max_body:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def bodiless(method: str, status: int) -> bool:
    """Whether the response has no body whatever its header fields say (RFC 9112 §6.3)."""
    return method == "HEAD" or status in (204, 304) or 100 <= status < 200


def content_length(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UpstreamHttpError("invalid Content-Length") from None


def has_framed_body(method: str, status: int, headers: dict[str, str]) -> bool:
    """Whether the body's end is known without the connection closing (RFC 9112 §6.3)."""
    if bodiless(method, status):
        return True
    return "chunked" in headers.get("transfer-encoding", "").lower() or "content-length" in headers


STREAM_READ_BYTES = 65536


async def body_pieces(
    reader: asyncio.StreamReader, method: str, status: int, headers: dict[str, str]
) -> AsyncIterator[bytes]:
    """The raw (still encoded) body as it arrives, by the framing of RFC 9112 §6.3. The caller bounds the size."""
    if bodiless(method, status):
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while size := await chunk_size(reader):
            while size > 0:
                piece = await reader.read(min(size, STREAM_READ_BYTES))
                if not piece:
                    raise UpstreamHttpError("the connection closed in the middle of the body")
                size -= len(piece)
                yield piece
            await read_exactly(reader, 2)  # CRLF after the chunk
    elif (length_header := headers.get("content-length")) is not None:
        remaining = content_length(length_header)
        while remaining > 0:
            piece = await reader.read(min(remaining, STREAM_READ_BYTES))
            if not piece:
                raise UpstreamHttpError("the connection closed in the middle of the body")
            remaining -= len(piece)
            yield piece
    else:
        while piece := await reader.read(STREAM_READ_BYTES):
            yield piece


class Decoder:
    """Incremental content decoding (gzip, deflate, identity) with a cap on the decoded size."""

    def __init__(self, encoding: str, max_body: int) -> None:
        encoding = encoding.strip().lower()
        if encoding and encoding != "identity" and encoding not in ("gzip", "x-gzip", "deflate"):
            raise UpstreamHttpError(f"an unsupported content encoding ({encoding[:40]})")
        self._encoding = encoding
        self._decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32) if encoding not in ("", "identity") else None
        self._left = max_body

    def feed(self, raw: bytes) -> bytes:
        if self._decompressor is None:
            decoded = raw
        else:
            try:
                decoded = self._decompressor.decompress(raw, self._left + 1)
            except zlib.error:
                raise UpstreamHttpError(f"a body that is not valid {self._encoding}") from None
            if self._decompressor.unconsumed_tail:
                raise BodyTooLarge
        self._left -= len(decoded)
        if self._left < 0:
            raise BodyTooLarge
        return decoded


def decode(raw: bytes, encoding: str, max_body: int) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise UpstreamHttpError(f"an unsupported content encoding ({encoding[:40]})")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        decoded = decompressor.decompress(raw, max_body + 1)
    except zlib.error:
        raise UpstreamHttpError(f"a body that is not valid {encoding}") from None
    if len(decoded) > max_body or decompressor.unconsumed_tail:
        raise BodyTooLarge
    return decoded

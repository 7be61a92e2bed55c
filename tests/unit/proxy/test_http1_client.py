"""The proxy's HTTP/1.1 client against raw servers on 127.0.0.1 that answer byte for byte as scripted: body framings,
gzip, interim responses, connection reuse and a server closing an idle keep-alive connection."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Awaitable, Callable

import pytest

from gateway.proxy.http1_client import BodyTooLarge, ConnectFailed, Origin, UpstreamHttpError, UpstreamPool

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def _with_server(script: Script, test: Callable[[Origin, list[int]], Awaitable[None]]) -> None:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await test(Origin.parse(f"http://127.0.0.1:{port}/mcp?x=1"), connections)


def run(script: Script, test: Callable[[Origin, list[int]], Awaitable[None]]) -> None:
    asyncio.run(_with_server(script, test))


def answers(*responses: bytes) -> Script:
    """Answer each request on a connection with the next response, then close."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await _read_request(reader)
            writer.write(response)
            await writer.drain()

    return script


async def post(pool: UpstreamPool, origin: Origin, max_body: int = 1 << 20) -> tuple[int, dict[str, str], bytes]:
    response = await pool.request(origin, "POST", {"accept": "x"}, b"{}", max_body=max_body, connect_timeout=2)
    return response.status, response.headers, response.body


def test_the_request_line_headers_and_body_framings() -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello")
        seen.append(await _read_request(reader))
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nT: x\r\n\r\n"
        )
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
        await writer.drain()

    async def test(origin: Origin, connections: list[int]) -> None:
        pool = UpstreamPool()
        assert await post(pool, origin) == (200, {"content-length": "5", "x-a": "1"}, b"hello")
        assert (await post(pool, origin))[2] == b"abcde"
        assert (await post(pool, origin))[2] == b"until close"
        assert len(connections) == 1  # one keep-alive connection for all three

    run(script, test)
    assert seen[0].startswith(b"POST /mcp?x=1 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\ncontent-length: 2\r\n\r\n{}" in seen[0]


def test_gzip_is_decoded_and_bounded() -> None:
    body = gzip.compress(b"x" * 1000)
    response = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def test(origin: Origin, connections: list[int]) -> None:
        assert (await post(UpstreamPool(), origin))[2] == b"x" * 1000

    run(answers(response), test)

    async def too_big(origin: Origin, connections: list[int]) -> None:
        with pytest.raises(BodyTooLarge):
            await post(UpstreamPool(), origin, max_body=999)

    run(answers(response), too_big)


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" + b"y" * 10,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n" + b"y" * 10 + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 10,
    ],
)
def test_a_body_over_the_limit_is_refused_whatever_its_framing(response: bytes) -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        with pytest.raises(BodyTooLarge):
            await post(UpstreamPool(), origin, max_body=9)

    run(answers(response), test)


def test_a_keep_alive_connection_the_server_closed_is_replaced_without_failing_the_request() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()  # then close: the pooled connection is dead

    async def test(origin: Origin, connections: list[int]) -> None:
        pool = UpstreamPool()
        assert (await post(pool, origin))[2] == b"ok"
        await asyncio.sleep(0.05)
        assert (await post(pool, origin))[2] == b"ok"
        assert len(connections) == 2

    run(script, test)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"", "closed before a complete response"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x response"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "middle of the body"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", "unsupported content encoding"),
    ],
)
def test_broken_answers_are_errors(response: bytes, message: str) -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        with pytest.raises(UpstreamHttpError, match=message):
            await post(UpstreamPool(), origin)

    run(answers(response), test)


def test_header_values_with_line_breaks_are_never_sent() -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        with pytest.raises(UpstreamHttpError, match="line break"):
            await UpstreamPool().request(
                origin, "POST", {"x-key": "a\r\nhost: evil"}, b"", max_body=10, connect_timeout=1
            )

    run(answers(), test)


def test_nothing_listening_is_a_connect_failure() -> None:
    async def test() -> None:
        with pytest.raises(ConnectFailed):
            await post(UpstreamPool(), Origin.parse("http://127.0.0.1:9/mcp"))

    asyncio.run(test())


def test_origins_are_parsed_once_with_their_defaults() -> None:
    assert Origin.parse("https://api.example.com") == Origin("https", "api.example.com", 443, "/", "api.example.com")
    assert Origin.parse("http://[::1]:8080/a/mcp").host_header == "[::1]:8080"
    with pytest.raises(ValueError):
        Origin.parse("ftp://example.com/")


def test_a_streamed_body_arrives_piece_by_piece_and_leaving_early_closes_the_connection() -> None:
    # Given a server that sends a chunked, gzip-encoded event stream in two parts and then holds it open
    release = asyncio.Event()
    encoder = zlib.compressobj(wbits=31)  # one gzip member, flushed after each part
    first = encoder.compress(b"data: one\n\n") + encoder.flush(zlib.Z_SYNC_FLUSH)
    second = encoder.compress(b"data: two\n\n") + encoder.flush(zlib.Z_SYNC_FLUSH)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n")
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for part in (first, second):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.05)
        await release.wait()  # never finishes the body

    async def test(origin: Origin, connections: list[int]) -> None:
        pool = UpstreamPool()
        received: list[bytes] = []
        async with asyncio.timeout(5):
            async with pool.stream(origin, "GET", {}, b"", max_body=1 << 20, connect_timeout=2) as response:
                assert response.status == 200
                async for piece in response.chunks():
                    received.append(piece)
                    if b"".join(received) == b"data: one\n\ndata: two\n\n":
                        break
        # Then both parts came without the body's end, and the unfinished connection is not reused
        assert b"".join(received) == b"data: one\n\ndata: two\n\n"
        assert not pool._idle.get((origin.scheme, origin.host, origin.port))
        release.set()

    run(script, test)


async def read_all(pool: UpstreamPool, origin: Origin, *, max_body: int) -> bytes:
    async with pool.stream(origin, "GET", {}, b"", max_body=max_body, connect_timeout=2) as response:
        return b"".join([piece async for piece in response.chunks()])


def test_a_streamed_body_read_to_its_end_keeps_the_connection_and_is_bounded() -> None:
    async def test(origin: Origin, connections: list[int]) -> None:
        pool = UpstreamPool()
        for _ in range(2):
            assert await read_all(pool, origin, max_body=1 << 20) == b"hello"
        assert len(connections) == 1  # the second request reused the connection
        with pytest.raises(BodyTooLarge):
            await read_all(pool, origin, max_body=3)

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    run(answers(ok, ok, ok), test)

"""One kept HTTP/1.1 connection to an AWS endpoint, for :mod:`gateway.aws.dynamodb_direct`: send a whole request,
read the whole answer (RFC 9112: status line, header fields, a ``Content-Length`` or chunked body), keep the
connection for the next unless the server closes it.

``http.client`` parses every answer's header fields with the ``email`` package, which cost more CPU than the rest of
a DynamoDB read; the AWS JSON endpoints answer a handful of fields and a sized body, which this reads directly.
"""

from __future__ import annotations

import socket
import ssl

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 16 * 1024 * 1024  # DynamoDB's answers are at most a few MB (an item is at most 400 KB, a page 1 MB)


class ClosedBeforeAnswer(ConnectionError):
    """The server closed the connection without answering (a kept connection it dropped while idle)."""


class BadAnswer(ConnectionError):
    """What came back is not an HTTP/1.1 answer this client reads."""


class KeptConnection:
    """A connected socket (TLS when ``context`` is given) with a buffered reader."""

    def __init__(
        self, host: str, port: int, *, context: ssl.SSLContext | None, connect_timeout: float, read_timeout: float
    ) -> None:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=host)
            sock.settimeout(read_timeout)
        except BaseException:
            sock.close()
            raise
        self._socket = sock
        self._reader = sock.makefile("rb")
        self.answers = 0
        """Answers read on this connection so far (0: it was never used)."""

    def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send ``request`` (a whole HTTP/1.1 request) and read the answer: (status, body, whether the server will
        close the connection). Raises :class:`ClosedBeforeAnswer`, :class:`BadAnswer`, ``TimeoutError`` or another
        ``OSError``."""
        self._socket.sendall(request)
        line = self._reader.readline(MAX_LINE)
        if not line:
            raise ClosedBeforeAnswer("the server closed the connection")
        version, _, rest = line.partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise BadAnswer(f"not an HTTP/1.1 status line: {line[:80]!r}")
        closes = version == b"HTTP/1.0"
        length: int | None = None
        chunked = False
        for _ in range(MAX_HEADERS):
            field = self._reader.readline(MAX_LINE)
            if field in (b"\r\n", b"\n"):
                break
            if not field:
                raise BadAnswer("the answer ended in its header fields")
            name, _, value = field.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                closes = b"close" in value.lower()
        else:
            raise BadAnswer("too many header fields")
        body = self._chunked() if chunked else self._exactly(length) if length is not None else self._until_close()
        if length is None and not chunked:
            closes = True
        self.answers += 1
        return int(code), body, closes

    def _exactly(self, size: int) -> bytes:
        if not 0 <= size <= MAX_BODY:
            raise BadAnswer(f"an answer of {size} bytes")
        data = self._reader.read(size)
        if len(data) != size:
            raise BadAnswer("the answer ended before its Content-Length")
        return data

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self._reader.readline(MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._reader.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                    pass  # trailer fields
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise BadAnswer("the answer is too large")
            parts.append(self._exactly(size))
            self._reader.readline(MAX_LINE)

    def _until_close(self) -> bytes:
        data = self._reader.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise BadAnswer("the answer is too large")
        return data

    def close(self) -> None:
        self._reader.close()
        self._socket.close()

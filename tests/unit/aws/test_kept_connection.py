"""The kept connection of the direct DynamoDB client (gateway.aws.kept_connection) reads the answers HTTP/1.1 allows
(RFC 9112 §6: a Content-Length, chunked, or until the server closes) and says when the server will close.

A real socket server on 127.0.0.1 answers bytes each test scripts (the faults and framings moto never sends).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from gateway.aws.kept_connection import BadAnswer, ClosedBeforeAnswer, KeptConnection

REQUEST = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"


@pytest.fixture
def answering() -> Iterator[Callable[[list[bytes | None]], KeptConnection]]:
    """A server that reads each request and answers the next scripted bytes (None: it closes the connection, at once
    after the answer before it)."""
    listeners: list[socket.socket] = []

    def start(answers: list[bytes | None]) -> KeptConnection:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                for number, answer in enumerate(answers):
                    received = b""
                    while not received.endswith(b"{}"):
                        chunk = connection.recv(4096)
                        if not chunk:
                            return
                        received += chunk
                    if answer is None:
                        return
                    connection.sendall(answer)
                    if answers[number + 1 : number + 2] == [None]:
                        return

        threading.Thread(target=serve, daemon=True).start()
        port = listener.getsockname()[1]
        return KeptConnection("127.0.0.1", port, context=None, connect_timeout=5, read_timeout=5)

    yield start
    for listener in listeners:
        listener.close()


def test_sized_answers_keep_the_connection(answering: Callable[[list[bytes | None]], KeptConnection]) -> None:
    sized = b'HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 7\r\n\r\n{"a":1}'
    connection = answering([sized, sized])
    assert connection.exchange(REQUEST) == (200, b'{"a":1}', False)
    assert connection.exchange(REQUEST) == (200, b'{"a":1}', False)
    assert connection.answers == 2
    connection.close()


def test_a_chunked_answer_is_joined(answering: Callable[[list[bytes | None]], KeptConnection]) -> None:
    chunked = (
        b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nx-t: 1\r\n\r\n'  # two chunks (one with an extension), a trailer
    )
    connection = answering([chunked])
    assert connection.exchange(REQUEST) == (400, b'{"a":1}', False)
    connection.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\n\r\n{}",  # no length: the body ends when the server closes
    ],
)
def test_an_answer_that_ends_the_connection_says_so(
    answer: bytes, answering: Callable[[list[bytes | None]], KeptConnection]
) -> None:
    connection = answering([answer, None])
    status, body, closes = connection.exchange(REQUEST)
    assert (status, body, closes) == (200, b"{}", True)
    connection.close()


def test_a_server_that_closes_without_answering(answering: Callable[[list[bytes | None]], KeptConnection]) -> None:
    connection = answering([None])
    with pytest.raises(ClosedBeforeAnswer):
        connection.exchange(REQUEST)
    connection.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}",  # shorter than it said, then closed
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-",  # ended in its header fields
    ],
)
def test_what_is_not_an_answer_is_refused(
    answer: bytes, answering: Callable[[list[bytes | None]], KeptConnection]
) -> None:
    connection = answering([answer, None])
    with pytest.raises(BadAnswer):
        connection.exchange(REQUEST)
    connection.close()

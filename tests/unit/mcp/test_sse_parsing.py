"""Parsing Server-Sent Events by the standard's rules, and finding the JSON-RPC answers in them."""

from __future__ import annotations

from gateway.mcp import sse
from gateway.mcp.sse import answered_ids, parse
from tests.support.hostile_json import DEEP_SMALL


def test_fields_comments_and_line_endings() -> None:
    stream = parse(': keep-alive\r\nid: 1\r\nretry: 250\r\ndata: {"a":\r\ndata:1}\r\n\r\nid:2\ndata: x\n\n')
    assert stream.data == ['{"a":\n1}', "x"]
    assert stream.last_event_id == "2"
    assert stream.retry_ms == 250


def test_an_unterminated_last_event_is_not_dispatched() -> None:
    text = "id: 1\ndata: a\n\nid: 2\ndata: b\n"
    stream = parse(text)
    assert stream.data == ["a"]
    assert stream.last_event_id == "1"
    assert stream.complete == "id: 1\ndata: a\n\n"


def test_a_priming_event_sets_the_last_event_id_without_data() -> None:
    stream = parse("id: prime\nretry: 1000\ndata: \n\n")
    assert stream.last_event_id == "prime"
    assert stream.data == [""]
    assert answered_ids(stream) == set()


def test_invalid_retry_and_id_with_nul_are_ignored() -> None:
    stream = parse("retry: 10s\nid: a\0b\ndata: x\n\n")
    assert stream.retry_ms is None
    assert stream.last_event_id is None


def test_answered_ids_are_responses_only() -> None:
    stream = parse(
        'data: {"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}\n\n'
        'data: {"jsonrpc":"2.0","id":"a","result":{}}\n\n'
        'data: {"jsonrpc":"2.0","id":2,"error":{"code":1,"message":"m"}}\n\n'
        'data: [{"jsonrpc":"2.0","id":3,"result":{}}]\n\n'
        'data: not json with "id"\n\n'
    )
    assert answered_ids(stream) == {"a", 2, 3}


def test_a_stream_fed_in_pieces_gives_each_event_once_whatever_the_cuts() -> None:
    # A BOM, CRLF line ends, a multi-byte character, and cuts everywhere (inside a CRLF, inside the character)
    raw = (
        '\ufeffid: 1\r\nretry: 7\r\ndata: \r\n\r\nid: 2\r\ndata: {"jsonrpc":"2.0","id":3,"result":"é"}\r\n\r\ndata: cut'
    )
    encoded = raw.encode()
    for size in (1, 2, 3, 5, 64):
        parser = sse.IncrementalParser()
        complete, data, last_id, retry = "", [], None, None
        for start in range(0, len(encoded), size):
            stream = parser.feed(encoded[start : start + size])
            complete += stream.complete
            data += stream.data
            last_id = stream.last_event_id or last_id
            retry = stream.retry_ms if stream.retry_ms is not None else retry
        assert complete == raw[1 : raw.index("data: cut")]
        assert data == ["", '{"jsonrpc":"2.0","id":3,"result":"é"}'] and last_id == "2" and retry == 7


def test_an_event_nested_too_deep_answers_nothing_and_raises_nothing() -> None:
    deep = DEEP_SMALL.decode()
    stream = parse(f'id: 1\ndata: {{"jsonrpc":"2.0","id":1,"result":{deep}}}\n\n')
    assert answered_ids(stream) == set()

from tollway.sse import SSEDecoder, encode_json, encode_named


def _all(chunks: list[bytes]) -> list[tuple[str | None, bytes]]:
    dec = SSEDecoder()
    out = []
    for c in chunks:
        out += [(e.event, e.data) for e in dec.feed(c)]
    out += [(e.event, e.data) for e in dec.close()]
    return out


def test_split_across_packets_and_crlf() -> None:
    raw = (
        b'data: {"a":1}\r\n\r\n: ping\r\n\r\n'
        b'event: message_start\r\ndata: {"b":2}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    whole = _all([raw])
    assert whole == [(None, b'{"a":1}'), ("message_start", b'{"b":2}'), (None, b"[DONE]")]
    # every possible split point, including between \r and \n
    for i in range(1, len(raw)):
        assert _all([raw[:i], raw[i:]]) == whole, i
    # byte by byte
    assert _all([raw[i : i + 1] for i in range(len(raw))]) == whole


def test_lone_cr_multiline_data_and_no_trailing_blank_line() -> None:
    raw = b"data: one\rdata: two\r\rdata: last"
    assert _all([raw]) == [(None, b"one\ntwo"), (None, b"last")]


def test_comments_only_yield_nothing() -> None:
    assert _all([b": keep-alive\n\n:\n\n"]) == []


def test_encoders_round_trip() -> None:
    blob = encode_json({"x": 1}) + encode_named("ping", {"type": "ping"})
    assert _all([blob]) == [(None, b'{"x":1}'), ("ping", b'{"type":"ping"}')]

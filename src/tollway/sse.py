"""Server-sent events: an incremental decoder and the encoders tollway writes.

The decoder copes with what real upstreams send: events split across packets (even inside a
``\\r\\n``), ``\\r\\n`` or ``\\r`` line endings, comment lines (``: ping``), ``event:`` lines, multi-line
``data:`` and a stream that ends without ``[DONE]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None


class SSEDecoder:
    """Feed raw bytes as they arrive; get back the complete events they finish."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            # keep a trailing \r: its \n may be in the next packet
            tail = b"\r" if buffer.endswith(b"\r") else b""
            body = buffer[:-1] if tail else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            event = _parse_block(buffer[start:end])
            if event is not None:
                events.append(event)
            start = end + 2
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: a final block without its blank line still counts."""
        rest, self._buffer = self._buffer.rstrip(b"\r\n"), b""
        if not rest:
            return []
        event = _parse_block(rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        return [event] if event is not None else []


def _parse_block(block: bytes) -> SSEEvent | None:
    data: list[bytes] = []
    name: str | None = None
    for line in block.split(b"\n"):
        if not line or line[0] == 58:  # ':' comment / keep-alive
            continue
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return SSEEvent(b"\n".join(data), name)


DONE = b"data: [DONE]\n\n"


def encode_data(payload: bytes) -> bytes:
    """An unnamed event (OpenAI style) around an already-serialized JSON payload."""
    return b"data: " + payload + b"\n\n"


def encode_json(obj: object) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_named(event: str, obj: object) -> bytes:
    """A named event (Anthropic style: the SDK drops events without their ``event:`` line)."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"

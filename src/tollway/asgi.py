"""The few ASGI primitives tollway's hot path needs, without a framework in between."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from .errors import BodyTooLarge, ClientDisconnected, InvalidJSON, InvalidRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    return await read_sized_body(receive, limit, header(scope, b"content-length"))


async def read_sized_body(receive: Receive, limit: int, length: bytes | None) -> bytes:
    """``read_body`` for a caller that already holds the ``Content-Length`` header's value."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"The request body is {int(length)} bytes; this gateway accepts at most {limit}.")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"The request body is larger than {limit} bytes, the most this gateway accepts."
            )
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


def parse_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidJSON("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


async def respond(send: Send, status: int, body: bytes, headers: Headers) -> None:
    """A whole body. ``headers`` must not hold a content-length: it is added here (without one the
    server would frame the body in chunked transfer encoding)."""
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, payload: Any, extra: Headers | None = None) -> None:
    await respond(send, status, orjson.dumps(payload), JSON_HEADERS + (extra or []))

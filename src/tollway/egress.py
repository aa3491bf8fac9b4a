"""How a pipeline answers a client: the ``Responder`` interface the stages write to, and
``ASGIResponder``, which writes to the client over ASGI in the words of its protocol
(``protocols/``). Other responders: ``cache.recording.Recording`` (a shared call)."""

from __future__ import annotations

from typing import Protocol

import orjson

from .asgi import SSE_HEADERS, Headers, Message, Send
from .call import Call
from .errors import TollwayError
from .protocols.base import ClientProtocol
from .providers.base import Reply

_JSON = (b"content-type", b"application/json")


class Responder(Protocol):
    async def reply(self, call: Call, reply: Reply) -> None:
        """Send a whole answer."""

    async def start_stream(self, call: Call) -> None:
        """Send the status line and headers of a stream (after its first event is in hand)."""

    async def chunk(self, data: bytes) -> None:
        """Send stream bytes, already encoded for the client's protocol."""

    async def end_stream(self) -> None: ...

    async def stream_error(self, call: Call, error: TollwayError) -> None:
        """The stream broke after bytes reached the client: end it with an explicit error event."""

    async def error(self, call: Call, error: TollwayError) -> None:
        """Nothing was sent yet: answer with an error status and the client's envelope."""


class ASGIResponder:
    """The answer to one client over ASGI: the tollway headers, bodies, SSE framing and error
    statuses; the protocol supplies its error envelope, its mid-stream error event and the header
    its SDKs read the request id from."""

    __slots__ = ("_protocol", "_send")

    def __init__(self, send: Send, protocol: ClientProtocol) -> None:
        self._send = send
        self._protocol = protocol

    def headers(self, call: Call) -> Headers:
        request_id = call.request_id.encode()
        headers = [
            (b"x-request-id", request_id),
            (b"x-tollway-provider", call.provider.encode()),
            (b"x-tollway-model", call.upstream_model.encode()),
            (b"x-tollway-attempts", b"%d" % call.attempts),
            *call.extra_headers,
        ]
        if self._protocol.request_id_header is not None:
            headers.append((self._protocol.request_id_header, request_id))
        return headers

    def _start(self, status: int, call: Call, body: bytes) -> Message:
        """The start of a whole JSON answer: the tollway headers and a content-length (without one
        the server would frame the body in chunked transfer encoding)."""
        headers = self.headers(call)
        headers.insert(0, _JSON)
        headers.append((b"content-length", b"%d" % len(body)))
        return {"type": "http.response.start", "status": status, "headers": headers}

    async def reply(self, call: Call, reply: Reply) -> None:
        await self._send(self._start(200, call, reply.body))
        await self._send({"type": "http.response.body", "body": reply.body})

    async def start_stream(self, call: Call) -> None:
        await self._send(
            {"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self.headers(call)}
        )

    async def chunk(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def stream_error(self, call: Call, error: TollwayError) -> None:
        # the SDKs raise on the error event; no end-of-stream marker follows, so nothing downstream
        # mistakes a broken answer for a finished one
        await self.chunk(self._protocol.stream_error_event(error))
        await self.end_stream()

    async def error(self, call: Call, error: TollwayError) -> None:
        body = orjson.dumps(self._protocol.envelope(error))
        start = self._start(error.status, call, body)
        if error.retry_after is not None:
            start["headers"].insert(-1, (b"retry-after", str(max(1, round(error.retry_after))).encode()))
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body})

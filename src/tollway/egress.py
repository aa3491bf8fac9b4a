"""How a pipeline answers a client: one ``Responder`` per client protocol (see ``ingress/``)."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from .asgi import JSON_HEADERS, SSE_HEADERS, Headers, Send, respond
from .call import Call
from .errors import TollwayError
from .providers.base import Reply


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
    """What every client protocol's responder shares: the tollway headers, bodies, SSE framing and
    error statuses over ASGI. A protocol supplies its error envelope and its mid-stream error event."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    def headers(self, call: Call) -> Headers:
        return [
            (b"x-request-id", call.request_id.encode()),
            (b"x-tollway-provider", call.provider.encode()),
            (b"x-tollway-model", call.upstream_model.encode()),
            (b"x-tollway-attempts", str(call.attempts).encode()),
            *call.extra_headers,
        ]

    def envelope(self, error: TollwayError) -> dict[str, Any]:
        raise NotImplementedError

    def stream_error_event(self, error: TollwayError) -> bytes:
        raise NotImplementedError

    async def reply(self, call: Call, reply: Reply) -> None:
        await respond(self._send, 200, reply.body, JSON_HEADERS + self.headers(call))

    async def start_stream(self, call: Call) -> None:
        await self._send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self.headers(call)})

    async def chunk(self, data: bytes) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def stream_error(self, call: Call, error: TollwayError) -> None:
        # the SDKs raise on the error event; no end-of-stream marker follows, so nothing downstream
        # mistakes a broken answer for a finished one
        await self.chunk(self.stream_error_event(error))
        await self.end_stream()

    async def error(self, call: Call, error: TollwayError) -> None:
        headers = JSON_HEADERS + self.headers(call)
        if error.retry_after is not None:
            headers.append((b"retry-after", str(max(1, round(error.retry_after))).encode()))
        await respond(self._send, error.status, orjson.dumps(self.envelope(error)), headers)

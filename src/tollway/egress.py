"""How a pipeline answers a client: one ``Responder`` per client protocol (see ``ingress/``)."""

from __future__ import annotations

from typing import Protocol

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

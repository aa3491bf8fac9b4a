"""``Recording``: the responder an upstream call writes to when its answer may be shared (with the
callers of an identical request in flight, see ``dedup``) or stored (``exact``).

It keeps every stream event as it arrives, so a client that joins late replays the events so far
and then follows the live ones; reassembles the stream into the whole answer; and tells waiting
clients when something new arrived. It never blocks the upstream: a slow client only makes the list
of events it has yet to read longer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..call import Call, Usage
from ..errors import StreamInterrupted, TollwayError
from ..protocols.base import CacheCodec
from ..providers.base import Reply
from ..sse import SSEDecoder, encode_data
from ..translate.completion import Assembler


def encode_named_raw(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


@dataclass(frozen=True, slots=True)
class Event:
    data: bytes  # one SSE event, as the client receives it
    usage_only: bool  # the closing usage chunk, for clients that asked for it


class Recording:
    """Implements ``egress.Responder`` for one upstream call; read by any number of clients."""

    def __init__(self, *, stream: bool, chat: bool, codec: CacheCodec) -> None:
        self.stream = stream
        self.chat = chat
        self.codec = codec
        self.events: list[Event] = []
        self.started = False  # stream: the first event is here
        self.complete = False  # the upstream call ended cleanly (the flight then calls ``finish``)
        self.done = False  # readers may finish: the answer is final (or failed)
        self.failure: TollwayError | None = None
        self.body: bytes | None = None  # non-stream: the answer as received
        self.usage: Usage | None = None
        self.saw_usage = False
        self._assembler = Assembler() if stream else None
        self._decoder = SSEDecoder() if stream else None
        self._answer: tuple[bytes, dict[str, Any] | None] | None = None
        self._changed = asyncio.Event()

    # -- what failover writes ---------------------------------------------------------------------

    async def reply(self, call: Call, reply: Reply) -> None:
        self.body, self.usage = reply.body, reply.usage
        self.complete = True

    async def start_stream(self, call: Call) -> None:
        self.started = True
        self._pulse()

    async def chunk(self, data: bytes) -> None:
        assert self._decoder is not None and self._assembler is not None
        for event in self._decoder.feed(data):
            if event.data == b"[DONE]":
                continue  # every reader writes its own, after what it chose to send
            usage_only = False
            try:
                chunks, usage_only = self.codec.read(event)
                for chunk in chunks:
                    self._assembler.feed(chunk)
            except (
                ValueError,
                TypeError,
                TollwayError,
            ):  # not JSON, not understood: pass it on, never store it
                self._assembler.understood = False
            self.saw_usage |= usage_only
            raw = encode_named_raw(event.event, event.data) if event.event else encode_data(event.data)
            self.events.append(Event(raw, usage_only))
        self._pulse()

    async def end_stream(self) -> None:
        assert self._assembler is not None
        try:
            for chunk in self.codec.close():
                self._assembler.feed(chunk)
        except (ValueError, TypeError, TollwayError):
            self._assembler.understood = False
        self.complete = True  # readers learn it from ``finish``, once the answer is stored

    async def stream_error(self, call: Call, error: TollwayError) -> None:
        self.fail(error)

    async def error(self, call: Call, error: TollwayError) -> None:
        self.fail(error)

    # -- the outcome ------------------------------------------------------------------------------

    def finish(self, usage: Usage | None = None) -> None:
        if usage is not None:
            self.usage = usage
        self.done = True
        self._pulse()

    def fail(self, error: TollwayError) -> None:
        if not self.done:
            self.failure = error
            self.done = True
        self._pulse()

    def cancel(self) -> None:
        self.fail(StreamInterrupted("The call was cancelled: every client that waited for it went away."))

    def answer(self) -> tuple[bytes, dict[str, Any] | None]:
        """The whole answer as a non-streaming client receives it, and (for chat) parsed.

        Raises ``StreamInterrupted`` for a stream whose answer is incomplete or not understood."""
        if self._answer is None:
            if self._assembler is not None:
                completion = self._assembler.completion(self.usage) if self._assembler.understood else None
                if completion is None:
                    raise StreamInterrupted("The shared stream ended before its answer was complete.")
                self._answer = self.codec.body(completion), completion
            else:
                if self.body is None:
                    raise StreamInterrupted("The shared call ended without an answer.")
                completion = None
                if self.chat:
                    try:
                        completion = self.codec.neutral(self.body)
                    except (ValueError, TypeError, TollwayError):
                        completion = None
                self._answer = self.body, completion
        return self._answer

    # -- waiting ----------------------------------------------------------------------------------

    def _pulse(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int) -> None:
        """Until there are more than ``seen`` events, the stream started, or the call is over."""
        while len(self.events) <= seen and not self.done:
            await self._changed.wait()

    async def wait_started(self) -> None:
        while not self.started and not self.done:
            await self._changed.wait()

    async def wait_done(self) -> None:
        while not self.done:
            await self._changed.wait()

"""Send a whole answer to a client in the shape it asked for: one body, or a synthesized stream."""

from __future__ import annotations

from typing import Any

from ..call import Call
from ..egress import Responder
from ..errors import StreamInterrupted, TollwayError
from ..protocols.base import CacheCodec
from ..providers.base import Reply


async def send_answer(
    call: Call,
    out: Responder,
    body: bytes,
    completion: dict[str, Any] | None,
    codec: CacheCodec | None = None,
) -> None:
    """``body`` is in the client's protocol; ``completion`` its neutral form, when already known."""
    if not call.stream:
        await out.reply(call, Reply(body, None))
        return
    protocol = call.protocol
    codec = codec or protocol.codec(model=call.model, request_id=call.request_id)
    if completion is None:
        try:
            completion = codec.neutral(body)
        except (ValueError, TypeError, TollwayError):
            completion = None
        if completion is None:
            raise StreamInterrupted("The stored answer cannot be replayed as a stream.")
    await out.start_stream(call)
    await out.chunk(codec.stream(completion, include_usage=protocol.wants_usage(call.body)))
    call.ttft_ms = call.elapsed_ms()
    await out.end_stream()

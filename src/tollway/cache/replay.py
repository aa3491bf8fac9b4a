"""Send a whole answer to a client in the shape it asked for: one body, or a synthesized stream."""

from __future__ import annotations

from typing import Any

from ..call import Call
from ..egress import Responder
from ..errors import StreamInterrupted, TollwayError
from ..providers.base import Reply
from .codec import Codec, codec_for


def wants_usage(call: Call) -> bool:
    options = call.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def send_answer(
    call: Call, out: Responder, body: bytes, completion: dict[str, Any] | None, codec: Codec | None = None
) -> None:
    """``body`` is in the client's protocol; ``completion`` its neutral form, when already known."""
    if not call.stream:
        await out.reply(call, Reply(body, None))
        return
    codec = codec or codec_for(call)
    if completion is None:
        try:
            completion = codec.neutral(body)
        except (ValueError, TypeError, TollwayError):
            completion = None
        if completion is None:
            raise StreamInterrupted("The stored answer cannot be replayed as a stream.")
    await out.start_stream(call)
    await out.chunk(codec.stream(completion, include_usage=wants_usage(call)))
    call.ttft_ms = call.elapsed_ms()
    await out.end_stream()

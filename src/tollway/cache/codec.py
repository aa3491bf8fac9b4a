"""One client protocol as the cache sees it: how its answers become the protocol-neutral form (an
OpenAI ``chat.completion``) and back.

- ``read`` turns one SSE event of a streamed answer into OpenAI chunks (for ``completion.Assembler``)
  and says whether the event must reach every reader (an OpenAI usage-only chunk goes only to
  readers who asked for usage); ``close`` flushes what the stream still owes at its end.
- ``neutral`` / ``body`` convert a whole answer from / to the client's protocol.
- ``stream`` replays a whole answer as the client's protocol's stream, closing event included.
- ``tail`` is what a reader sends after the recorded events: ``[DONE]`` for OpenAI, nothing for
  Anthropic (its ``message_stop`` event is part of the recording).

Each call gets its own codec: reading a stream keeps state.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..call import Call, ClientProtocol
from ..sse import DONE, SSEEvent, encode_json, encode_named
from ..translate.anthropic.client_response import openai_to_anthropic_response
from ..translate.anthropic.client_stream import OpenAIToAnthropicStream
from ..translate.anthropic.upstream_response import AnthropicToOpenAIStream, anthropic_to_openai_response
from .completion import synthesize_chunks


class Codec(Protocol):
    tail: bytes

    def read(self, event: SSEEvent) -> tuple[list[dict[str, Any]], bool]: ...

    def close(self) -> list[dict[str, Any]]: ...

    def neutral(self, body: bytes) -> dict[str, Any] | None: ...

    def body(self, completion: dict[str, Any]) -> bytes: ...

    def stream(self, completion: dict[str, Any], *, include_usage: bool) -> bytes: ...


class OpenAICodec:
    tail = DONE

    def read(self, event: SSEEvent) -> tuple[list[dict[str, Any]], bool]:
        chunk = orjson.loads(event.data)
        if not isinstance(chunk, dict):
            raise TypeError("not a chunk")
        return [chunk], not chunk.get("choices") and isinstance(chunk.get("usage"), dict)

    def close(self) -> list[dict[str, Any]]:
        return []

    def neutral(self, body: bytes) -> dict[str, Any] | None:
        value = orjson.loads(body)
        return value if isinstance(value, dict) else None

    def body(self, completion: dict[str, Any]) -> bytes:
        return orjson.dumps(completion)

    def stream(self, completion: dict[str, Any], *, include_usage: bool) -> bytes:
        return (
            b"".join(encode_json(c) for c in synthesize_chunks(completion, include_usage=include_usage))
            + DONE
        )


class AnthropicCodec:
    """Anthropic Messages, through the translators the Anthropic ingress uses."""

    tail = b""

    def __init__(self, call: Call) -> None:
        self._model = call.model
        self._request_id = call.request_id
        self._reader: AnthropicToOpenAIStream | None = None

    def read(self, event: SSEEvent) -> tuple[list[dict[str, Any]], bool]:
        if self._reader is None:
            self._reader = AnthropicToOpenAIStream(
                model=self._model, request_id=self._request_id, include_usage=True
            )
        data = orjson.loads(event.data)
        if not isinstance(data, dict):
            raise TypeError("not an event")
        return self._reader.feed(event.event or "", data), False

    def close(self) -> list[dict[str, Any]]:
        return [] if self._reader is None else self._reader.finish()

    def neutral(self, body: bytes) -> dict[str, Any] | None:
        value = orjson.loads(body)
        if not isinstance(value, dict):
            return None
        return anthropic_to_openai_response(value, model=self._model, request_id=self._request_id)

    def body(self, completion: dict[str, Any]) -> bytes:
        return orjson.dumps(openai_to_anthropic_response(completion, model=self._model))

    def stream(self, completion: dict[str, Any], *, include_usage: bool) -> bytes:
        writer = OpenAIToAnthropicStream(model=self._model)
        events = []
        for chunk in synthesize_chunks(completion, include_usage=True):  # the closing event carries usage
            events += writer.feed(chunk)
        events += writer.finish()
        return b"".join(encode_named(name, data) for name, data in events)


def codec_for(call: Call) -> Codec:
    if call.protocol is ClientProtocol.ANTHROPIC:
        return AnthropicCodec(call)
    return OpenAICodec()

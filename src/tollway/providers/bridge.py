"""Between the OpenAI format (the pivot every translator speaks) and the client's own protocol.

A provider whose wire format differs from the client's translates its upstream's answer into
OpenAI chunks or an OpenAI response, and this module turns those into what the client speaks:
OpenAI SSE for OpenAI clients, Anthropic's named events for Anthropic clients.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..call import Call, ClientProtocol
from ..sse import DONE, encode_json, encode_named
from ..translate.anthropic.client_request import anthropic_to_openai_request
from ..translate.anthropic.client_response import openai_to_anthropic_response
from ..translate.anthropic.client_stream import OpenAIToAnthropicStream


class ClientChunks(Protocol):
    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    def finish(self) -> bytes:
        """The closing bytes; raises ``StreamInterrupted`` if the answer never finished."""


class OpenAIClientChunks:
    """OpenAI chunks to an OpenAI client: hide the usage chunk it did not ask for; end with [DONE]."""

    def __init__(self, wants_usage: bool) -> None:
        self._wants_usage = wants_usage

    def feed(self, chunk: dict[str, Any]) -> bytes:
        if not self._wants_usage and chunk.get("usage") is not None:
            if not chunk.get("choices"):
                return b""
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return encode_json(chunk)

    def finish(self) -> bytes:
        return DONE


class AnthropicClientChunks:
    """OpenAI chunks to an Anthropic client: the full named-event sequence."""

    def __init__(self, model: str) -> None:
        self._stream = OpenAIToAnthropicStream(model=model)

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return b"".join(encode_named(name, data) for name, data in self._stream.feed(chunk))

    def finish(self) -> bytes:
        return b"".join(encode_named(name, data) for name, data in self._stream.finish())


def client_chunks(call: Call) -> ClientChunks:
    if call.protocol is ClientProtocol.ANTHROPIC:
        return AnthropicClientChunks(call.model)
    return OpenAIClientChunks(call.client_wants_usage)


def wants_usage(call: Call) -> bool:
    """Did the client ask for a usage chunk? (Anthropic clients always get usage.)"""
    if call.protocol is ClientProtocol.ANTHROPIC:
        return True
    options = call.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def openai_request(call: Call) -> dict[str, Any]:
    """The call's body in the OpenAI format (a copy the provider may change)."""
    if call.protocol is ClientProtocol.ANTHROPIC:
        return anthropic_to_openai_request(call.body)
    return dict(call.body)


def client_body(call: Call, response: dict[str, Any]) -> bytes:
    """A whole OpenAI chat completion, in the client's protocol."""
    if call.protocol is ClientProtocol.ANTHROPIC:
        return orjson.dumps(openai_to_anthropic_response(response, model=call.model))
    return orjson.dumps(response)

"""The Anthropic client protocol (``/v1/messages``): the Anthropic SDKs, Claude Code. Requests reach
a non-Anthropic upstream through the pivot (``translate.anthropic.client_request``) and answers come
back as Anthropic's body or named events (``client_response``, ``client_stream``); an Anthropic
upstream passes them through untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import InvalidRequest, TollwayError
from ..sse import SSEEvent, encode_named
from ..translate.anthropic.client_request import anthropic_to_openai_request
from ..translate.anthropic.client_response import openai_to_anthropic_response
from ..translate.anthropic.client_stream import OpenAIToAnthropicStream
from ..translate.anthropic.upstream_response import AnthropicToOpenAIStream, anthropic_to_openai_response
from ..translate.completion import synthesize_chunks
from .base import CacheCodec, ClientProtocol, Encoder


def validate_messages(data: dict[str, Any]) -> tuple[str, bool]:
    """A Messages body: (requested model, stream). Messages in Anthropic's words, as its API says them."""
    model = data.get("model")
    if model is None:
        raise InvalidRequest("model: Field required", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Input should be a non-empty string", param="model")
    max_tokens = data.get("max_tokens")
    if max_tokens is None:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise InvalidRequest("max_tokens: Input should be a positive integer", param="max_tokens")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: Input should be a non-empty list", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise InvalidRequest(
                f"messages.{i}.role: Input should be 'user' or 'assistant'", param="messages"
            )
    stream = data.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("stream: Input should be a valid boolean", param="stream")
    return model, stream is True


def _events(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(encode_named(name, data) for name, data in events)


class AnthropicEncoder(Encoder):
    """Pivot chunks → the full named-event sequence (``message_start`` … ``message_stop``)."""

    __slots__ = ("_stream",)

    def __init__(self, model: str) -> None:
        self._stream = OpenAIToAnthropicStream(model=model)

    def feed(self, chunk: dict[str, Any]) -> bytes:
        return _events(self._stream.feed(chunk))

    def finish(self) -> bytes:
        return _events(self._stream.finish())


class AnthropicCodec(CacheCodec):
    """Recorded Anthropic answers, read back through the translators an Anthropic upstream uses."""

    __slots__ = ("_model", "_reader", "_request_id")
    tail = b""  # ``message_stop`` is a recorded event
    usage_apart = False  # message_start and message_delta always carry it

    def __init__(self, model: str, request_id: str) -> None:
        self._model = model
        self._request_id = request_id
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
        return _events(events)

    def late_usage(self, completion: dict[str, Any]) -> bytes:
        return b""


class AnthropicProtocol(ClientProtocol):
    request_id_header = b"request-id"  # the Anthropic SDKs read it into their errors and responses

    def wants_usage(self, body: dict[str, Any]) -> bool:
        """Always: Anthropic's stream carries usage in ``message_start`` and ``message_delta`` with
        no way to ask otherwise, and the SDKs (and Claude Code's cost display) read it there."""
        return True

    def pivot_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return anthropic_to_openai_request(body)

    def encode_body(self, completion: dict[str, Any], *, model: str) -> bytes:
        return orjson.dumps(openai_to_anthropic_response(completion, model=model))

    def encoder(self, body: dict[str, Any], *, model: str) -> Encoder:
        return AnthropicEncoder(model)

    def envelope(self, error: TollwayError) -> dict[str, Any]:
        return error.anthropic_envelope()

    def stream_error_event(self, error: TollwayError) -> bytes:
        # no message_stop follows: the SDKs raise on the error event
        return encode_named("error", error.anthropic_envelope())

    def model_object(self, name: str, created: int) -> dict[str, Any]:
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": _iso(created),
            "lifecycle": "active",
        }

    def model_list(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "data": models,
            "has_more": False,
            "first_id": models[0]["id"] if models else None,
            "last_id": models[-1]["id"] if models else None,
        }

    def codec(self, *, model: str, request_id: str) -> CacheCodec:
        return AnthropicCodec(model, request_id)


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


ANTHROPIC = AnthropicProtocol("anthropic")

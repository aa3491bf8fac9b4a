"""The OpenAI client protocol (``/v1/chat/completions``, ``/v1/embeddings``): the OpenAI SDKs and
everything built on them. Its chat format is also the pivot, so a request needs no translation and
an answer only its encoding.

Validation checks only what tollway itself relies on; every other parameter is passed through
untouched for the upstream to judge.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidRequest, TollwayError
from ..sse import DONE, SSEEvent, encode_json
from ..translate.completion import synthesize_chunks, usage_chunk
from .base import CacheCodec, ClientProtocol, Encoder

# -- validation: only what tollway relies on ------------------------------------------------------

_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "stream": (bool, "a boolean"),
    "stream_options": (dict, "an object"),
    "max_tokens": (int, "an integer"),
    "max_completion_tokens": (int, "an integer"),
    "n": (int, "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "tools": (list, "an array"),
    "user": (str, "a string"),
}


def _require_model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if model is None:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' must be a non-empty string.", param="model")
    return model


def _check_types(data: dict[str, Any]) -> None:
    # A body names few of these fields: look only at those it has; when one is wrong, the full loop
    # below reports the first wrong one in _TYPES' order.
    for name, value in data.items():
        typed = _TYPES.get(name)
        if typed is not None:
            kind = typed[0]
            if value is not None and (
                not isinstance(value, kind) or (kind is int and isinstance(value, bool))
            ):
                break
    else:
        return
    for name, (kind, said) in _TYPES.items():
        value = data.get(name)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise InvalidRequest(
                f"Invalid type for '{name}': expected {said}, got {type(value).__name__}.", param=name
            )


def validate_chat(data: dict[str, Any]) -> tuple[str, bool]:
    """A chat-completions body: (requested model, stream)."""
    model = data.get("model")
    if not isinstance(model, str) or not model:
        model = _require_model(data)  # raises the right error
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise InvalidRequest(
                f"messages[{i}] must be an object with a string 'role'.", param=f"messages[{i}]"
            )
    _check_types(data)
    return model, data.get("stream") is True


def validate_embeddings(data: dict[str, Any]) -> tuple[str, bool]:
    """An embeddings body: (requested model, False)."""
    model = _require_model(data)
    inp = data.get("input")
    if inp is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if not isinstance(inp, (str, list)) or (isinstance(inp, list) and not inp):
        raise InvalidRequest("'input' must be a string or a non-empty array.", param="input")
    fmt = data.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return model, False


# -- answering ------------------------------------------------------------------------------------


class OpenAIEncoder(Encoder):
    """Pivot chunks are already OpenAI's: hide the usage chunk the client did not ask for, end with
    ``[DONE]``."""

    __slots__ = ("_wants_usage",)

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


class OpenAICodec(CacheCodec):
    """Recorded OpenAI answers are pivot already: reading them is parsing them."""

    __slots__ = ()
    tail = DONE  # the recording leaves ``[DONE]`` out: each reader ends its own stream
    usage_apart = True

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

    def late_usage(self, completion: dict[str, Any]) -> bytes:
        usage = completion.get("usage")
        return usage_chunk(completion, usage) if isinstance(usage, dict) else b""


_CODEC = OpenAICodec()  # it keeps no state: one serves every call


class OpenAIProtocol(ClientProtocol):
    def wants_usage(self, body: dict[str, Any]) -> bool:
        """Only when asked: ``stream_options.include_usage``, as OpenAI does. A client that did not
        ask may not expect the extra chunk with no choices (some break on it)."""
        options = body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def pivot_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(body)

    def encode_body(self, completion: dict[str, Any], *, model: str) -> bytes:
        return orjson.dumps(completion)

    def encoder(self, body: dict[str, Any], *, model: str) -> Encoder:
        return OpenAIEncoder(self.wants_usage(body))

    def envelope(self, error: TollwayError) -> dict[str, Any]:
        return error.openai_envelope()

    def stream_error_event(self, error: TollwayError) -> bytes:
        # the SDKs raise APIError on a data chunk with an "error" member
        return encode_json(error.openai_envelope())

    def model_object(self, name: str, created: int) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": created, "owned_by": "tollway"}

    def model_list(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        return {"object": "list", "data": models}

    def codec(self, *, model: str, request_id: str) -> CacheCodec:
        return _CODEC


OPENAI = OpenAIProtocol("openai")

"""OpenAI-format endpoints: ``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/models``.

The body is parsed once (orjson) and checked only for what tollway itself relies on; every other
parameter is passed through untouched for the upstream to judge.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ..asgi import Receive, Scope, Send
from ..call import ClientProtocol, Endpoint
from ..egress import ASGIResponder
from ..errors import InvalidRequest, TollwayError
from ..runtime import Runtime
from ..sse import encode_json
from .calls import serve


class OpenAIResponder(ASGIResponder):
    """Errors in OpenAI's envelope; a broken stream ends with `data: {"error": …}` and no [DONE]."""

    __slots__ = ()

    def envelope(self, error: TollwayError) -> dict[str, Any]:
        return error.openai_envelope()

    def stream_error_event(self, error: TollwayError) -> bytes:
        return encode_json(error.openai_envelope())


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


def validate_embeddings(data: dict[str, Any]) -> str:
    model = _require_model(data)
    inp = data.get("input")
    if inp is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if not isinstance(inp, (str, list)) or (isinstance(inp, list) and not inp):
        raise InvalidRequest("'input' must be a string or a non-empty array.", param="input")
    fmt = data.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return model


# -- handlers -------------------------------------------------------------------------------------


def _validate_embeddings(data: dict[str, Any]) -> tuple[str, bool]:
    return validate_embeddings(data), False


# The proxy handlers return serve's coroutine rather than awaiting it in one of their own: a frame
# fewer on every resume of the request.


def chat_completions(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    return serve(
        rt, scope, receive, OpenAIResponder(send), ClientProtocol.OPENAI, Endpoint.CHAT, validate_chat
    )


def embeddings(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    return serve(
        rt,
        scope,
        receive,
        OpenAIResponder(send),
        ClientProtocol.OPENAI,
        Endpoint.EMBEDDINGS,
        _validate_embeddings,
    )

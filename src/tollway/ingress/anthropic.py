"""Anthropic-format endpoints for Anthropic SDK clients: ``/v1/messages`` and
``/v1/messages/count_tokens``. Any provider can serve them; errors use Anthropic's envelope and
streams Anthropic's named events."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import orjson

from ..asgi import (
    JSON_HEADERS,
    ClientDisconnected,
    Headers,
    Receive,
    Scope,
    Send,
    parse_object,
    read_body,
    respond,
)
from ..call import Call, ClientProtocol, Endpoint
from ..egress import ASGIResponder
from ..errors import InvalidRequest, TollwayError
from ..keys.auth import authenticate
from ..providers.anthropic import AnthropicUpstream
from ..runtime import Runtime
from ..sse import encode_named
from ..tokens import estimate_prompt
from ..translate.anthropic.client_request import anthropic_to_openai_request
from .calls import new_call, serve


class AnthropicResponder(ASGIResponder):
    """Errors in Anthropic's envelope; a broken stream ends with `event: error` and no message_stop."""

    __slots__ = ()

    def headers(self, call: Call) -> Headers:
        return [*super().headers(call), (b"request-id", call.request_id.encode())]  # the SDK reads it

    def envelope(self, error: TollwayError) -> dict[str, Any]:
        return error.anthropic_envelope()

    def stream_error_event(self, error: TollwayError) -> bytes:
        return encode_named("error", error.anthropic_envelope())


def validate_messages(data: dict[str, Any]) -> tuple[str, bool]:
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


def messages(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    # serve's coroutine, not one around it (see ingress/openai.py)
    return serve(
        rt,
        scope,
        receive,
        AnthropicResponder(send),
        ClientProtocol.ANTHROPIC,
        Endpoint.CHAT,
        validate_messages,
    )


async def count_tokens(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Asked of the first Anthropic deployment serving the model; estimated when none does."""
    out = AnthropicResponder(send)
    call = new_call(scope, ClientProtocol.ANTHROPIC, Endpoint.CHAT)
    try:
        data = parse_object(await read_body(scope, receive, rt.config.server.max_body_bytes))
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: Field required", param="model")
        call.model = model
        await authenticate(rt, call)  # a key that may not use the model may not count its tokens
        if not isinstance(data.get("messages"), list):
            raise InvalidRequest("messages: Field required", param="messages")
        for dep in rt.router.candidates(model):
            if isinstance(dep.upstream, AnthropicUpstream) and dep.available():
                body = await dep.upstream.count_tokens(data, dep)
                await respond(send, 200, body, JSON_HEADERS)
                return
        count = estimate_prompt(anthropic_to_openai_request(data))
        await respond(send, 200, orjson.dumps({"input_tokens": count}), JSON_HEADERS)
    except ClientDisconnected:
        return
    except TollwayError as exc:
        await out.error(call, exc)

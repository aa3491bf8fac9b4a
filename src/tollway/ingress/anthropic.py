"""Anthropic-format endpoints for Anthropic SDK clients: ``/v1/messages`` and
``/v1/messages/count_tokens``. Any provider can serve them; what the bodies must hold and how answers
are written (Anthropic's envelope, its named events) is the Anthropic client protocol's
(``protocols/anthropic.py``)."""

from __future__ import annotations

from collections.abc import Awaitable

import orjson

from ..asgi import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    parse_object,
    read_body,
    respond,
)
from ..call import Endpoint
from ..egress import ASGIResponder
from ..errors import ClientDisconnected, InvalidRequest, TollwayError, UnsupportedCapability
from ..keys.auth import authenticate
from ..protocols.anthropic import ANTHROPIC, validate_messages
from ..runtime import Runtime
from ..tokens import estimate_prompt
from .calls import new_call, serve


def messages(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    # serve's coroutine, not one around it (see ingress/openai.py)
    return serve(rt, scope, receive, send, ANTHROPIC, Endpoint.CHAT, validate_messages)


async def count_tokens(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """Asked of the first available deployment whose kind declares token counting; estimated when
    none does."""
    out = ASGIResponder(send, ANTHROPIC)
    call = new_call(scope, ANTHROPIC, Endpoint.COUNT_TOKENS)
    try:
        data = parse_object(await read_body(scope, receive, rt.config.server.max_body_bytes))
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: Field required", param="model")
        call.model = model
        await authenticate(rt, call)  # a key that may not use the model may not count its tokens
        if not isinstance(data.get("messages"), list):
            raise InvalidRequest("messages: Field required", param="messages")
        try:
            counters = rt.router.candidates(model, Endpoint.COUNT_TOKENS)
        except UnsupportedCapability:
            counters = []  # the model exists, but no deployment of it counts tokens: estimated below
        for dep in counters:
            if dep.available():
                body = await dep.upstream.count_tokens(data, dep.upstream_model)
                await respond(send, 200, body, JSON_HEADERS)
                return
        count = estimate_prompt(ANTHROPIC.pivot_request(data))
        await respond(send, 200, orjson.dumps({"input_tokens": count}), JSON_HEADERS)
    except ClientDisconnected:
        return
    except TollwayError as exc:
        await out.error(call, exc)

"""``GET /v1/models`` and ``GET /v1/models/{id}``: the models this gateway serves, in the client's own
format. OpenAI's list and model objects by default; Anthropic's (``type: "model"``,
``display_name``, ``has_more``) for a client that sends ``anthropic-version``, as the Anthropic SDKs
always do. Once keys exist, only to a valid key, and only the models that key may use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..asgi import Receive, Scope, Send, header, respond_json
from ..call import Call, ClientProtocol, Endpoint
from ..egress import ASGIResponder
from ..errors import ModelNotFound, TollwayError
from ..keys.auth import authenticate
from ..keys.key import Principal
from ..runtime import Runtime
from .anthropic import AnthropicResponder
from .calls import new_call
from .openai import OpenAIResponder

PREFIXES = ("/v1/models/", "/models/")


def _client(scope: Scope, send: Send) -> tuple[Call, ASGIResponder]:
    if header(scope, b"anthropic-version") is not None:
        return new_call(scope, ClientProtocol.ANTHROPIC, Endpoint.CHAT), AnthropicResponder(send)
    return new_call(scope, ClientProtocol.OPENAI, Endpoint.CHAT), OpenAIResponder(send)


def _allowed(principal: Principal, names: list[str]) -> list[str]:
    key = principal.key
    return names if key is None else [m for m in names if key.allows(m)]


def _model(rt: Runtime, protocol: ClientProtocol, name: str) -> dict[str, Any]:
    if protocol is ClientProtocol.ANTHROPIC:
        created = datetime.fromtimestamp(int(rt.started_at), UTC).isoformat().replace("+00:00", "Z")
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": created,
            "lifecycle": "active",
        }
    return {"id": name, "object": "model", "created": int(rt.started_at), "owned_by": "tollway"}


async def models(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """The list: every public model name (aliases and the models providers list)."""
    call, out = _client(scope, send)
    try:
        principal = await authenticate(rt, call, check_model=False)
    except TollwayError as exc:
        await out.error(call, exc)
        return
    data = [_model(rt, call.protocol, m) for m in _allowed(principal, rt.router.models())]
    if call.protocol is ClientProtocol.ANTHROPIC:
        await respond_json(
            send,
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )
    else:
        await respond_json(send, 200, {"object": "list", "data": data})


async def model(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """One model by name: a listed one, or ``provider/model`` for a configured provider; 404 in the
    client's envelope otherwise, and for a model the key may not use."""
    call, out = _client(scope, send)
    path: str = scope["path"]
    name = next(path[len(p) :] for p in PREFIXES if path.startswith(p))
    try:
        principal = await authenticate(rt, call, check_model=False)
        if not rt.router.serves(name) or not _allowed(principal, [name]):
            raise ModelNotFound(
                f"The model '{name}' does not exist or is not served by this gateway.", param="model"
            )
    except TollwayError as exc:
        await out.error(call, exc)
        return
    await respond_json(send, 200, _model(rt, call.protocol, name))

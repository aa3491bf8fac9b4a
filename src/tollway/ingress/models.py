"""``GET /v1/models`` and ``GET /v1/models/{id}``: the models this gateway serves, in the client's own
format. OpenAI's list and model objects by default; Anthropic's (``type: "model"``,
``display_name``, ``has_more``) for a client that sends ``anthropic-version``, as the Anthropic SDKs
always do. Once keys exist, only to a valid key, and only the models that key may use."""

from __future__ import annotations

from ..asgi import Receive, Scope, Send, header, respond_json
from ..call import Call, Endpoint
from ..egress import ASGIResponder
from ..errors import ModelNotFound, TollwayError
from ..keys.auth import authenticate
from ..keys.key import Principal
from ..protocols.anthropic import ANTHROPIC
from ..protocols.openai import OPENAI
from ..runtime import Runtime
from .calls import new_call

PREFIXES = ("/v1/models/", "/models/")


def _client(scope: Scope, send: Send) -> tuple[Call, ASGIResponder]:
    """The client's protocol: Anthropic's SDKs always send ``anthropic-version``; OpenAI's is the default."""
    protocol = ANTHROPIC if header(scope, b"anthropic-version") is not None else OPENAI
    return new_call(scope, protocol, Endpoint.CHAT), ASGIResponder(send, protocol)


def _allowed(principal: Principal, names: list[str]) -> list[str]:
    key = principal.key
    return names if key is None else [m for m in names if key.allows(m)]


async def models(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    """The list: every public model name (aliases and the models providers list)."""
    call, out = _client(scope, send)
    try:
        principal = await authenticate(rt, call, check_model=False)
    except TollwayError as exc:
        await out.error(call, exc)
        return
    created, protocol = int(rt.started_at), call.protocol
    data = [protocol.model_object(m, created) for m in _allowed(principal, rt.router.models())]
    await respond_json(send, 200, protocol.model_list(data))


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
    await respond_json(send, 200, call.protocol.model_object(name, int(rt.started_at)))

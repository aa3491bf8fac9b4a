"""OpenAI-format endpoints: ``/v1/chat/completions`` and ``/v1/embeddings`` (``/v1/models`` is in
``models``). What the bodies must hold and how answers are written is the OpenAI client protocol's
(``protocols/openai.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable

from ..asgi import Receive, Scope, Send
from ..call import Endpoint
from ..protocols.openai import OPENAI, validate_chat, validate_embeddings
from ..runtime import Runtime
from .calls import serve

# The proxy handlers return serve's coroutine rather than awaiting it in one of their own: a frame
# fewer on every resume of the request.


def chat_completions(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    return serve(rt, scope, receive, send, OPENAI, Endpoint.CHAT, validate_chat)


def embeddings(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    return serve(rt, scope, receive, send, OPENAI, Endpoint.EMBEDDINGS, validate_embeddings)

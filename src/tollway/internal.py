"""Calls the gateway makes on its own behalf — an embedding for the semantic cache today; a
workflow's steps or a router's classifier tomorrow — through the same pipeline as a client's call:
authenticated as the key of the call it is made for (so that key's limits and budget apply, and
its tenant's cache), answered from the cache when it can be, routed with failover, priced and
logged. Its log row names the call it was made for in ``parent_request_id``; without a parent it
runs as an open call would.

A sub-call is OpenAI-shaped and whole (never a stream): the gateway reads the answer itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from . import pipeline
from .call import Call, Endpoint
from .ingress.calls import new_request_id
from .protocols.openai import OPENAI

if TYPE_CHECKING:
    from .errors import TollwayError
    from .providers.base import Reply
    from .runtime import Runtime


class _Answer:
    """The responder of a sub-call: keeps the answer (or the error) instead of sending it."""

    __slots__ = ("body", "failure")

    def __init__(self) -> None:
        self.body = b""
        self.failure: TollwayError | None = None

    async def reply(self, call: Call, reply: Reply) -> None:
        self.body = reply.body

    async def error(self, call: Call, error: TollwayError) -> None:
        self.failure = error

    async def stream_error(self, call: Call, error: TollwayError) -> None:
        self.failure = error

    # a sub-call never streams
    async def start_stream(self, call: Call) -> None:
        raise AssertionError("a sub-call does not stream")

    async def chunk(self, data: bytes) -> None:
        raise AssertionError("a sub-call does not stream")

    async def end_stream(self) -> None:
        raise AssertionError("a sub-call does not stream")


async def sub_call(rt: Runtime, parent: Call | None, endpoint: Endpoint, body: dict[str, Any]) -> bytes:
    """The answer's body (OpenAI's JSON) to ``body`` (which names its ``model``), asked on behalf of
    ``parent``; raises the ``TollwayError`` that ended the call."""
    model = body["model"]
    call = Call(new_request_id(), OPENAI, endpoint, body, model, False)
    if parent is not None:
        call.api_key = parent.api_key
        call.parent_request_id = parent.request_id
    answer = _Answer()
    await pipeline.handle(rt, call, answer)
    if answer.failure is not None:
        raise answer.failure
    return answer.body


async def ask(rt: Runtime, parent: Call | None, endpoint: Endpoint, body: dict[str, Any]) -> Any:
    """``sub_call``'s answer, parsed."""
    return orjson.loads(await sub_call(rt, parent, endpoint, body))

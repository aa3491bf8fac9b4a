"""The one small interface every upstream protocol implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from ..call import Call, Usage


@dataclass(slots=True)
class Reply:
    """A whole (non-streamed) answer, already in the client's wire format."""

    body: bytes
    usage: Usage | None


class ReplyStream(Protocol):
    """An opened upstream stream. The upstream accepted the call (status checked) before this exists.

    Iterating yields byte strings ready to write to the client (SSE events in the client's
    protocol). ``usage`` is final once iteration ends; ``close`` releases the connection early."""

    usage: Usage | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...


class Upstream(Protocol):
    """One provider's wire protocol. Errors raised are from ``tollway.errors`` (Upstream*).

    ``model`` is the name the upstream knows the model by: an upstream needs nothing else from the
    deployment (health and routing are the router's business, so this module does not import it)."""

    async def complete(self, call: Call, model: str) -> Reply: ...

    async def stream(self, call: Call, model: str) -> ReplyStream: ...

    async def embed(self, call: Call, model: str) -> Reply: ...

    async def close(self) -> None: ...

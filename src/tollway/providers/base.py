"""The one small interface every upstream protocol implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..call import Call, Usage
from ..errors import UnsupportedCapability


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
    deployment (health and routing are the router's business, so this module does not import it).

    Every upstream has every method; its kind's declared capabilities (``providers/registry.py``)
    say which of them do real work, and the router sends a call only to a deployment whose kind
    declares what it needs. A method without its capability raises ``unsupported`` should anything
    call it anyway."""

    async def complete(self, call: Call, model: str) -> Reply: ...

    async def stream(self, call: Call, model: str) -> ReplyStream: ...

    async def embed(self, call: Call, model: str) -> Reply: ...

    async def count_tokens(self, body: dict[str, Any], model: str) -> bytes:
        """The input tokens of an Anthropic Messages ``body``, as Anthropic's count_tokens answers."""
        ...

    async def close(self) -> None: ...


def unsupported(provider: str, what: str) -> UnsupportedCapability:
    """A call reached an upstream whose kind does not declare it (the router filters those out)."""
    return UnsupportedCapability(f"{provider}: this provider offers no {what}", param="model")

"""The one small interface of an answer store (``memory.MemoryStore``, ``redis.RedisStore``)."""

from __future__ import annotations

from typing import Any, Protocol

from .entry import Entry


class AnswerStore(Protocol):
    kind: str

    async def get(self, key: str) -> Entry | None: ...

    async def put(self, key: str, entry: Entry, ttl: float) -> None: ...

    async def stats(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...

"""The in-process answer store: an LRU bounded by entry count and bytes, with a TTL per entry.

Entries are kept as flat tuples of strings, bytes and numbers rather than as ``Entry`` objects:
tuples of such atoms drop out of the garbage collector's tracking, so a full cache of 10,000 answers
adds nothing to the work of every full collection. An ``Entry`` is rebuilt for each hit (~0.5 µs).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from .entry import Entry


class MemoryStore:
    kind = "memory"

    def __init__(self, *, max_entries: int, max_bytes: int, clock: Any = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        # key → (body, tenant, provider, upstream_model, cost, input_tokens, output_tokens, created,
        #        expires at, size)
        self._items: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    def get_now(self, key: str) -> Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[8] <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return Entry(*item[:8])

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        self.put_now(key, entry, ttl)

    def put_now(self, key: str, entry: Entry, ttl: float) -> None:
        if entry.size > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        size = entry.size
        self._items[key] = (
            entry.body,
            entry.tenant,
            entry.provider,
            entry.upstream_model,
            entry.cost,
            entry.input_tokens,
            entry.output_tokens,
            entry.created,
            self._clock() + ttl,
            size,
        )
        self.bytes += size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        self.bytes -= self._items.pop(key)[9]

    def __len__(self) -> int:
        return len(self._items)

    async def stats(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "entries": len(self._items),
            "bytes": self.bytes,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "evictions": self.evictions,
        }

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0

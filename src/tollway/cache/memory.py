"""The in-process answer store: an LRU bounded by entry count and bytes, with a TTL per entry."""

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
        self._items: OrderedDict[str, tuple[Entry, float]] = OrderedDict()  # key → (entry, expires at)
        self.bytes = 0
        self.evictions = 0

    async def get(self, key: str) -> Entry | None:
        return self.get_now(key)

    def get_now(self, key: str) -> Entry | None:
        item = self._items.get(key)
        if item is None:
            return None
        entry, expires = item
        if expires <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        self.put_now(key, entry, ttl)

    def put_now(self, key: str, entry: Entry, ttl: float) -> None:
        if entry.size > self.max_bytes:
            return
        if key in self._items:
            self._drop(key)
        self._items[key] = (entry, self._clock() + ttl)
        self.bytes += entry.size
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._items))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        entry, _ = self._items.pop(key)
        self.bytes -= entry.size

    def __len__(self) -> int:
        return len(self._items)

    async def stats(self) -> dict[str, Any]:
        return {"backend": self.kind, "entries": len(self._items), "bytes": self.bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes, "evictions": self.evictions}

    async def close(self) -> None:
        self._items.clear()
        self.bytes = 0

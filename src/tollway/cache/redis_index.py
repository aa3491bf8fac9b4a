"""The semantic index shared between gateway processes through Redis.

Each semantic group is a Redis stream of (digest, text, vector) entries, capped at
``cache.semantic.max_entries`` and expiring with the cache's TTL. Every process keeps a local mirror
(a ``MemoryIndex``) of the groups it has seen and, before searching one, reads only the entries added
since it last looked: ``XRANGE`` from the last id it mirrored, one round trip. Stream ids stay valid
when the stream is trimmed, so a mirror never loses its place. Searching stays local (numpy).

Why streams in plain Redis rather than Redis Stack's vector search or pgvector: Redis is already the
one service tollway needs for several processes (limits, budgets, the answer store); plain Redis 7 is
what most deployments run; and brute force over a group's mirror is sub-millisecond at the sizes a
cache keeps, so a server-side vector index would add a dependency without saving time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import RedisError

from .embed import Vector
from .semantic import MemoryIndex

log = logging.getLogger("tollway.cache")

_WARN_EVERY = 30.0  # seconds between two warnings about an unreachable Redis


class RedisIndex(MemoryIndex):
    """The index shared through Redis streams, mirrored locally per group."""

    kind = "redis"

    def __init__(self, redis: Redis, *, prefix: str, max_entries: int, ttl: float) -> None:
        super().__init__(max_entries=max_entries, ttl=ttl)
        self._redis = redis
        self._prefix = "{" + prefix + ":cache}:s:"
        self.errors = 0
        self._warned_at = 0.0

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at > _WARN_EVERY:
            self._warned_at = now
            log.warning("semantic cache: cannot %s: %r", what, exc)

    async def add(self, name: str, digest: str, text: str, vector: Vector) -> None:
        key = self._prefix + name
        ttl_ms = max(1, int(self.ttl * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    key,
                    {"d": digest, "t": text.encode(), "v": vector.astype(np.float32).tobytes()},
                    maxlen=self.max_entries,
                    approximate=True,
                )
                pipe.pexpire(key, ttl_ms)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed("index in Redis", exc)
        self._local_add(name, digest, text, vector, time.time() + self.ttl)

    async def sync(self, name: str) -> None:
        group = self._groups.get(name)
        start = "-" if group is None else "(" + group.last_id
        try:
            while True:
                rows: list[Any] = list(
                    await self._redis.xrange(self._prefix + name, min=start, max="+", count=500) or ()
                )
                for entry_id, fields in rows:
                    raw_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    vector: Vector = np.frombuffer(bytes(fields[b"v"]), dtype=np.float32)
                    created = int(raw_id.split("-", 1)[0]) / 1000.0
                    self._local_add(
                        name,
                        bytes(fields[b"d"]).decode(),
                        bytes(fields[b"t"]).decode("utf-8", "replace"),
                        vector,
                        created + self.ttl,
                    )
                    mirrored = self._groups.get(name)
                    if mirrored is not None:
                        mirrored.last_id = raw_id
                    start = "(" + raw_id
                if len(rows) < 500:
                    return
        except (RedisError, OSError, KeyError, ValueError) as exc:
            self._failed("read the shared index", exc)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "errors": self.errors}

"""``AnswerCache``: what a running gateway holds for caching — the policy, the answer store (memory
or Redis), the semantic cache when enabled, and counters for ``/stats``. (The calls in flight that
identical calls may join are dedup's: ``dedup.Flights``.)"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..config import CacheConfig, Config
from ..errors import CacheUnavailable
from .backend import AnswerStore
from .entry import Entry
from .memory import MemoryStore
from .policy import Policy

if TYPE_CHECKING:
    from .embed import Embedder
    from .semantic import SemanticCache

log = logging.getLogger("tollway.cache")

_WARN_EVERY = 30.0  # seconds between two warnings about an unreachable shared store


class AnswerCache:
    def __init__(
        self, config: CacheConfig, store: AnswerStore, semantic: SemanticCache | None = None
    ) -> None:
        self.config = config
        self.policy = Policy(config)
        self.store = store
        self.semantic = semantic
        self.counts: Counter[str] = Counter()  # by cache status, since start
        self.saved = 0.0  # US dollars, since start
        self.unavailable = 0
        self._warned_at = 0.0

    async def start(self) -> None:
        if self.semantic is not None:
            await self.semantic.start()

    def _unavailable(self, exc: CacheUnavailable) -> None:
        self.unavailable += 1
        now = time.monotonic()
        if now - self._warned_at > _WARN_EVERY:
            self._warned_at = now
            log.warning("response cache unavailable, serving without it: %s", exc)

    async def get(self, key: str) -> Entry | None:
        try:
            return await self.store.get(key)
        except CacheUnavailable as exc:
            self._unavailable(exc)
            return None

    async def put(self, key: str, entry: Entry) -> None:
        try:
            await self.store.put(key, entry, self.config.ttl)
        except CacheUnavailable as exc:
            self._unavailable(exc)

    def count(self, status: str, saved: float | None = None) -> None:
        self.counts[status] += 1
        if saved:
            self.saved += saved

    async def stats(self) -> dict[str, Any]:
        return {
            "enabled": self.config.enabled,
            "ttl": self.config.ttl,
            "temperature_policy": self.config.temperature_policy,
            "dedup": self.config.dedup,
            "calls": dict(self.counts),
            "saved_usd": round(self.saved, 10),
            "unavailable": self.unavailable,
            "store": await self.store.stats(),
            "semantic": None if self.semantic is None else self.semantic.stats(),
        }

    async def close(self) -> None:
        if self.semantic is not None:
            await self.semantic.close()
        await self.store.close()


def make_cache(config: Config, embedder: Embedder | None = None) -> AnswerCache:
    """``embedder``: the semantic cache's, when not the local model (``gateway_embed``)."""
    c = config.cache
    store: AnswerStore
    redis_store = None
    if c.backend == "redis":
        from .redis import RedisStore  # the redis client is an optional extra

        store = redis_store = RedisStore(
            c.redis_url,
            prefix=c.redis_prefix,
            timeout=c.redis_timeout,
            max_entries=c.max_entries,
            max_bytes=c.max_bytes,
        )
    else:
        store = MemoryStore(max_entries=c.max_entries, max_bytes=c.max_bytes)
    semantic = None
    if c.semantic.enabled:
        # numpy and the model are an optional extra: imported only when semantic caching is on
        from .embed import make_embedder
        from .semantic import MemoryIndex, SemanticCache

        s = c.semantic
        index = MemoryIndex(max_entries=s.max_entries, ttl=c.ttl)
        if redis_store is not None:
            from .redis_index import RedisIndex

            index = RedisIndex(
                redis_store.client, prefix=c.redis_prefix, max_entries=s.max_entries, ttl=c.ttl
            )
        if embedder is None:
            embedder = make_embedder(s.embedder, model_path=s.model_path, tokenizer_path=s.tokenizer_path)
        semantic = SemanticCache(s, embedder, index)
    return AnswerCache(c, store, semantic)

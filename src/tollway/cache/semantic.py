"""The semantic cache: a paraphrase of a cached prompt gets the cached answer.

Only the last user message is compared by meaning; everything else — tenant, model, system prompt,
the conversation so far, tools, parameters — must match exactly, which ``key.CacheKey.group``
enforces: prompts are indexed and searched within their group only. A match needs the cosine
similarity of the two messages' embeddings at or above ``cache.semantic.threshold`` and, with
``cache.semantic.guard`` (the default), the lexical guard's agreement (``guard.agree``). The answer
itself lives in the exact cache under the matched prompt's key, so it expires and is evicted with it.

The index is brute-force cosine over numpy arrays, one array per group: a group rarely holds more
than a few thousand prompts, and a 384-float dot product over 10,000 rows takes well under a
millisecond. ``MemoryIndex`` serves one process; ``redis_index.RedisIndex`` shares it between
processes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import SemanticCacheConfig
from .embed import Embedder, Vector
from .guard import agree
from .key import CacheKey

if TYPE_CHECKING:
    from ..call import Call
    from ..runtime import Runtime

log = logging.getLogger("tollway.cache")

_CANDIDATES = 4  # best matches above the threshold offered to the guard, best first


@dataclass(frozen=True, slots=True)
class Match:
    digest: str  # the exact-cache key of the cached prompt's answer
    similarity: float
    text: str


class _Group:
    """The prompts of one semantic group: their vectors as rows of one array."""

    __slots__ = ("digests", "expires", "last_id", "n", "slots", "texts", "vectors")

    def __init__(self, dimensions: int) -> None:
        self.vectors = np.zeros((8, dimensions), dtype=np.float32)
        self.n = 0
        self.digests: list[str] = []
        self.texts: list[str] = []
        self.expires: list[float] = []
        self.slots: dict[str, int] = {}
        self.last_id = "0-0"  # RedisIndex: the newest stream entry mirrored

    def add(self, digest: str, text: str, vector: Vector, expires: float) -> bool:
        slot = self.slots.get(digest)
        if slot is not None:
            self.expires[slot] = max(self.expires[slot], expires)
            return False
        if self.n == len(self.vectors):
            grown = np.zeros((2 * self.n, self.vectors.shape[1]), dtype=np.float32)
            grown[: self.n] = self.vectors
            self.vectors = grown
        self.vectors[self.n] = vector
        self.slots[digest] = self.n
        self.digests.append(digest)
        self.texts.append(text)
        self.expires.append(expires)
        self.n += 1
        return True

    def keep(self, keep: list[int]) -> int:
        """Keep only the given slots (in order); returns how many were dropped."""
        dropped = self.n - len(keep)
        if dropped:
            self.vectors = (
                self.vectors[keep].copy() if keep else np.zeros((8, self.vectors.shape[1]), np.float32)
            )
            self.digests = [self.digests[i] for i in keep]
            self.texts = [self.texts[i] for i in keep]
            self.expires = [self.expires[i] for i in keep]
            self.slots = {d: i for i, d in enumerate(self.digests)}
            self.n = len(keep)
        return dropped

    def search(self, vector: Vector, threshold: float, now: float) -> list[tuple[float, int]]:
        if self.n == 0 or self.vectors.shape[1] != vector.shape[0]:
            return []
        scores = self.vectors[: self.n] @ vector
        above = np.flatnonzero(scores >= threshold)
        if above.size == 0:
            return []
        best = above[np.argsort(-scores[above])][:_CANDIDATES]
        return [(float(scores[i]), int(i)) for i in best if self.expires[int(i)] > now]


class MemoryIndex:
    """One process's index: groups in LRU order, bounded by the total number of prompts."""

    kind = "memory"

    def __init__(self, *, max_entries: int, ttl: float) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._groups: OrderedDict[str, _Group] = OrderedDict()
        self.count = 0

    def _group(self, name: str, dimensions: int) -> _Group:
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = _Group(dimensions)
        self._groups.move_to_end(name)
        return group

    def _local_add(self, name: str, digest: str, text: str, vector: Vector, expires: float) -> None:
        if self._group(name, vector.shape[0]).add(digest, text, vector, expires):
            self.count += 1
        while self.count > self.max_entries and self._groups:
            oldest_name, oldest = next(iter(self._groups.items()))
            now = time.time()
            live = [i for i in range(oldest.n) if oldest.expires[i] > now]
            # expired prompts go first; then the older half of the least recently used group
            keep = live if len(live) < oldest.n else live[len(live) // 2 + 1 :]
            self.count -= oldest.keep(keep)
            if oldest.n == 0:
                del self._groups[oldest_name]

    async def sync(self, name: str) -> None:
        return None

    async def add(self, name: str, digest: str, text: str, vector: Vector) -> None:
        self._local_add(name, digest, text, vector, time.time() + self.ttl)

    def search(self, name: str, vector: Vector, threshold: float) -> list[tuple[float, str, str]]:
        group = self._groups.get(name)
        if group is None:
            return []
        self._groups.move_to_end(name)
        return [
            (score, group.digests[i], group.texts[i])
            for score, i in group.search(vector, threshold, time.time())
        ]

    def forget(self, name: str, digest: str) -> None:
        """The answer behind ``digest`` is gone from the exact cache: stop matching it here."""
        group = self._groups.get(name)
        if group is not None and digest in group.slots:
            drop = group.slots[digest]
            self.count -= group.keep([i for i in range(group.n) if i != drop])

    def stats(self) -> dict[str, Any]:
        return {
            "index": self.kind,
            "groups": len(self._groups),
            "prompts": self.count,
            "max_entries": self.max_entries,
        }

    async def close(self) -> None:
        self._groups.clear()
        self.count = 0


class SemanticCache:
    def __init__(self, config: SemanticCacheConfig, embedder: Embedder, index: MemoryIndex) -> None:
        self.threshold = config.threshold
        self.guard = config.guard
        self.embedder = embedder
        self.index = index
        self.lookups = 0
        self.matches = 0
        self.vetoed = 0  # matches above the threshold that the guard refused
        self.embed_ms = 0.0

    async def start(self) -> None:
        await self.embedder.start()

    async def _embed(self, rt: Runtime, text: str, parent: Call) -> Vector | None:
        started = time.perf_counter()
        try:
            return await self.embedder.embed(rt, text, parent)
        finally:
            self.embed_ms += (time.perf_counter() - started) * 1000.0

    async def find(self, rt: Runtime, key: CacheKey, call: Call) -> tuple[Match | None, Vector | None]:
        """The best cached prompt of the same group that means the same; and the query's vector
        (kept to index this prompt if its answer gets stored). ``call``: the call looked up."""
        assert key.group is not None
        self.lookups += 1
        vector = await self._embed(rt, key.text, call)
        if vector is None:
            return None, None
        await self.index.sync(key.group)
        for similarity, digest, text in self.index.search(key.group, vector, self.threshold):
            if self.guard and not agree(key.text, text):
                self.vetoed += 1
                continue
            self.matches += 1
            return Match(digest, similarity, text), vector
        return None, vector

    async def add(self, rt: Runtime, key: CacheKey, vector: Vector | None, call: Call) -> None:
        if key.group is None:
            return
        if vector is None:
            vector = await self._embed(rt, key.text, call)
            if vector is None:
                return
        await self.index.add(key.group, key.digest, key.text, vector)

    def forget(self, key: CacheKey, digest: str) -> None:
        if key.group is not None:
            self.index.forget(key.group, digest)

    def stats(self) -> dict[str, Any]:
        return {
            "embedder": self.embedder.name,
            "threshold": self.threshold,
            "guard": self.guard,
            "lookups": self.lookups,
            "matches": self.matches,
            "vetoed": self.vetoed,
            "embed_ms_mean": round(self.embed_ms / self.lookups, 3) if self.lookups else None,
            **self.index.stats(),
        }

    async def close(self) -> None:
        await self.embedder.close()
        await self.index.close()

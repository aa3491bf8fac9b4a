"""The shared answer store: Redis, for several gateway processes (a call answered through one is a hit
through every other).

Keys, all under one hash tag so a script's keys share a slot: ``{<prefix>:cache}:e:<digest>`` holds
an encoded ``Entry`` with a TTL; ``…:lru`` is a sorted set of digests scored by last use (µs, Redis's
clock) and ``…:size`` a hash of digest → bytes plus ``_bytes``, their total. ``PUT`` stores, drops
what has surely expired, then evicts least-recently-used entries until both bounds hold; ``GET``
reads and touches. Each is one script, one round trip.

A cache must never fail a call: errors reach the caller as ``CacheUnavailable`` and are treated
as a miss (lookups) or a skipped store (see ``exact``).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..errors import CacheUnavailable
from .entry import Entry

_PUT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lru, sizes, prefix, digest, value = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local ttl, max_entries, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local function drop(d)
  local s = tonumber(redis.call('HGET', sizes, d) or '0')
  redis.call('ZREM', lru, d)
  redis.call('HDEL', sizes, d)
  redis.call('UNLINK', prefix .. d)
  return redis.call('HINCRBY', sizes, '_bytes', -s)
end
-- a digest last used before now - ttl was stored before that too: it has expired
local stale = redis.call('ZRANGEBYSCORE', lru, '-inf', now - ttl * 1000, 'LIMIT', 0, 100)
for i = 1, #stale do drop(stale[i]) end
local old = tonumber(redis.call('HGET', sizes, digest) or '0')
redis.call('SET', prefix .. digest, value, 'PX', ttl)
redis.call('ZADD', lru, now, digest)
redis.call('HSET', sizes, digest, string.len(value))
local total = redis.call('HINCRBY', sizes, '_bytes', string.len(value) - old)
local count = redis.call('ZCARD', lru)
local evicted = 0
while count > 0 and (count > max_entries or total > max_bytes) do
  local oldest = redis.call('ZRANGE', lru, 0, 0)[1]
  total = drop(oldest)
  count = count - 1
  evicted = evicted + 1
end
return evicted
"""

_GET = """
local value = redis.call('GET', ARGV[1] .. ARGV[2])
if value then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[1], 'XX', tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[2])
end
return value
"""


class RedisStore:
    kind = "redis"

    def __init__(self, url: str, *, prefix: str, timeout: float, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._redis: Redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        tag = "{" + prefix + ":cache}"
        self.entry_prefix = f"{tag}:e:"
        self._lru = f"{tag}:lru"
        self._sizes = f"{tag}:size"
        self._put = self._redis.register_script(_PUT)
        self._get = self._redis.register_script(_GET)
        self.evictions = 0
        self.errors = 0

    @property
    def client(self) -> Redis:
        return self._redis

    async def get(self, key: str) -> Entry | None:
        try:
            raw = await self._get(keys=[self._lru], args=[self.entry_prefix, key])
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise CacheUnavailable(str(exc)) from exc
        if raw is None:
            return None
        try:
            return Entry.decode(raw)
        except (ValueError, KeyError, TypeError):
            return None

    async def put(self, key: str, entry: Entry, ttl: float) -> None:
        value = entry.encode()
        if len(value) > self.max_bytes:
            return
        try:
            evicted = await self._put(
                keys=[self._lru, self._sizes],
                args=[
                    self.entry_prefix,
                    key,
                    value,
                    max(1, int(ttl * 1000)),
                    self.max_entries,
                    self.max_bytes,
                ],
            )
        except (RedisError, OSError) as exc:
            self.errors += 1
            raise CacheUnavailable(str(exc)) from exc
        self.evictions += int(evicted)

    async def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.kind,
            "max_entries": self.max_entries,
            "max_bytes": self.max_bytes,
            "evictions": self.evictions,
            "errors": self.errors,
        }
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zcard(self._lru)
                pipe.hget(self._sizes, "_bytes")
                entries, size = await pipe.execute()
            out.update(entries=int(entries), bytes=int(size or 0))
        except (RedisError, OSError):
            out.update(entries=None, bytes=None)
        return out

    async def close(self) -> None:
        await self._redis.aclose()

"""Ledgers in Redis, shared by every gateway process: one atomic Lua script (``EVALSHA``) per admission.

A ledger is two Redis keys: ``<name>:z``, a sorted set of entry ids scored by their expiry (ms), and
``<name>:h``, a hash of entry id → amount plus ``_sum`` (the live total) and, for budgets,
``_spent``. Times come from the Redis server's clock (``TIME``), so gateways whose clocks disagree
still share one window. Every key lives under ``{<limits.redis_prefix>}:`` — the braces are a Redis
Cluster hash tag that keeps one script's keys in one slot.

Settlements ride along: ``settle`` queues its operations, and the next admission from this process
carries them in the same script call, applied first — so this process always sees its own
settlements, and a busy gateway makes one round trip per request instead of two. With no admission
coming, queued settlements go out on their own after ``SETTLE_DELAY``. ``settle`` returns once its
operations ran (or raises what the call that carried them raised).

redis-py spends more time encoding and parsing many small arguments than Redis spends running the
script, so arguments and replies are packed into a few strings.

Errors are not handled here: the ``Limiter`` decides what an unreachable Redis means.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from .ledger import Check, Result, Settlement

SETTLE_DELAY = 0.002  # seconds a settlement waits for an admission to ride with

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Drop a ledger's expired entries and subtract them from _sum.
_PURGE = """
local function purge(z, h)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 500)
    if #gone == 0 then return end
    local amounts = redis.call('HMGET', h, unpack(gone))
    local freed = 0
    for j = 1, #amounts do freed = freed + (tonumber(amounts[j]) or 0) end
    redis.call('HDEL', h, unpack(gone))
    redis.call('ZREM', z, unpack(gone))
    if freed ~= 0 then redis.call('HINCRBY', h, '_sum', -freed) end
  end
end
"""

# KEYS: z, h for each settlement, then z, h for each check.
# ARGV[1]: settlements, "entry op value" each, space-separated; op is set (the entry's new amount),
#   release (drop the entry) or spend (drop it and add value to spent, if spent is seeded).
# ARGV[2]: the entry to admit ("" for settlements only). ARGV[3]: per check "kind limit amount
#   ttl_ms keep_ms", kind c (a cap on the entries' sum), b (a budget: spent + sum) or w (a budget
#   that only warns); keep_ms 0 leaves the keys' expiry alone.
# Reply: "status failed retry_ms used_1 … used_n unseeded…" (0-based indexes; failed -1 if none);
#   status 1 admitted, 0 refused, -1 a budget's spent is unset (nothing was recorded), 2 no admission.
STEP = (
    _NOW
    + _PURGE
    + """
local k = 0
for entry, op, value in string.gmatch(ARGV[1], '(%S+) (%a+) (%d+)') do
  k = k + 1
  local z, h = KEYS[2 * k - 1], KEYS[2 * k]
  value = tonumber(value)
  local old = redis.call('HGET', h, entry)
  if op == 'set' then
    if old then
      redis.call('HSET', h, entry, value)
      redis.call('HINCRBY', h, '_sum', value - tonumber(old))
    end
  else
    if old then
      redis.call('HDEL', h, entry)
      redis.call('ZREM', z, entry)
      redis.call('HINCRBY', h, '_sum', -tonumber(old))
    end
    if op == 'spend' and value ~= 0 and redis.call('HEXISTS', h, '_spent') == 1 then
      redis.call('HINCRBY', h, '_spent', value)
    end
  end
end
if ARGV[2] == '' then return '2 -1 0' end
local entry = ARGV[2]
local checks = {}
for kind, limit, amount, ttl, keep in string.gmatch(ARGV[3], '(%a) (%d+) (%d+) (%d+) (%d+)') do
  checks[#checks + 1] = {kind, tonumber(limit), tonumber(amount), tonumber(ttl), tonumber(keep)}
end
local n, base = #checks, 2 * k
local used, unseeded = {}, {}
local failed = 0
for i = 1, n do
  local c, z, h = checks[i], KEYS[base + 2 * i - 1], KEYS[base + 2 * i]
  purge(z, h)
  local sum = tonumber(redis.call('HGET', h, '_sum') or '0')
  if c[1] ~= 'c' then
    local spent = redis.call('HGET', h, '_spent')
    if not spent then unseeded[#unseeded + 1] = i - 1 else sum = sum + tonumber(spent) end
  end
  used[i] = sum
  if failed == 0 and c[1] ~= 'w' and sum + c[3] > c[2] then failed = i end
end
local function reply(status, retry)
  local out = {status, failed - 1, string.format('%.0f', retry)}
  for i = 1, n do out[#out + 1] = string.format('%.0f', used[i]) end
  for i = 1, #unseeded do out[#out + 1] = unseeded[i] end
  return table.concat(out, ' ')
end
if #unseeded > 0 then return reply(-1, 0) end
if failed > 0 then
  local c, z, h = checks[failed], KEYS[base + 2 * failed - 1], KEYS[base + 2 * failed]
  if c[1] ~= 'c' then return reply(0, 0) end
  -- how long until enough of the oldest entries expire to make room
  local need, freed, retry = used[failed] + c[3] - c[2], 0, c[4]
  local oldest = redis.call('ZRANGE', z, 0, 999, 'WITHSCORES')
  for j = 1, #oldest, 2 do
    freed = freed + (tonumber(redis.call('HGET', h, oldest[j])) or 0)
    if freed >= need then retry = tonumber(oldest[j + 1]) - now; break end
  end
  return reply(0, math.max(retry, 0))
end
for i = 1, n do
  local c, z, h = checks[i], KEYS[base + 2 * i - 1], KEYS[base + 2 * i]
  redis.call('ZADD', z, now + c[4], entry)
  redis.call('HSET', h, entry, c[3])
  redis.call('HINCRBY', h, '_sum', c[3])
  used[i] = used[i] + c[3]
  if c[5] > 0 then
    redis.call('PEXPIRE', z, c[5])
    redis.call('PEXPIRE', h, c[5])
  end
end
return reply(1, 0)
"""
)

# KEYS: z, h   ARGV: spent, keep_ms
SEED = """
if redis.call('HSETNX', KEYS[2], '_spent', ARGV[1]) == 1 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
end
return 1
"""

# KEYS: z, h
READ = (
    _NOW
    + _PURGE
    + """
purge(KEYS[1], KEYS[2])
return {redis.call('HGET', KEYS[2], '_spent') or '', redis.call('HGET', KEYS[2], '_sum') or '0'}
"""
)

# Windows and leases outlive their newest entry by this much before Redis drops the keys.
_GRACE_MS = 60_000

_Queued = tuple[str, Sequence[Settlement], "asyncio.Future[None]"]


def _ms_until(when: float, now: float) -> int:
    return max(1, int((when - now) * 1000))


class RedisBackend:
    name = "redis"
    local = False

    def __init__(
        self, url: str, *, prefix: str = "tollway", timeout: float = 0.5, pool_size: int = 64
    ) -> None:
        self.url = url
        self._prefix = "{" + prefix + "}:"
        # A bounded pool that makes a burst of requests queue for a connection instead of failing.
        # One quick retry on a broken pooled connection (Redis restarted); never on a timeout, whose
        # command may have run. No backoff: the Limiter's policy, not a sleep, handles an outage.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=max(2.0, 4 * timeout),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1, (RedisConnectionError,)),
        )
        self._redis = Redis.from_pool(pool)  # owns the pool: aclose() closes its connections
        self._step = self._redis.register_script(STEP)
        self._seed = self._redis.register_script(SEED)
        self._read = self._redis.register_script(READ)
        self._queued: list[_Queued] = []
        self._timer: asyncio.TimerHandle | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    def _keys(self, ledger: str) -> tuple[str, str]:
        name = self._prefix + ledger
        return name + ":z", name + ":h"

    # -- settlements ride with the next admission ----------------------------------------------------

    def _take(self, keys: list[str]) -> tuple[list[_Queued], str]:
        """The queued settlements, their keys appended to ``keys``, and their packed argument."""
        queued, self._queued = self._queued, []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ops: list[str] = []
        for entry, settlements, _ in queued:
            for s in settlements:
                keys.extend(self._keys(s.ledger))
                ops.append(f"{entry} {s.op.value} {s.value}")
        return queued, " ".join(ops)

    @staticmethod
    def _done(queued: list[_Queued], error: BaseException | None = None) -> None:
        for _, _, future in queued:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    async def settle(self, entry: str, settlements: Sequence[Settlement]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queued.append((entry, settlements, future))
        if self._timer is None:
            self._timer = loop.call_later(SETTLE_DELAY, self._flush_later)
        await future

    def _flush_later(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self._flush_quietly())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(Exception):  # each settle() caller gets the error through its future
            await self.flush()

    async def flush(self) -> None:
        """Send queued settlements now (they are otherwise sent with the next admission)."""
        keys: list[str] = []
        queued, ops = self._take(keys)
        if not queued:
            return
        try:
            await self._step(keys=keys, args=[ops, "", ""])
        except BaseException as exc:
            self._done(queued, exc)
            raise
        self._done(queued)

    # -- admission ----------------------------------------------------------------------------------

    async def admit(self, entry: str, checks: Sequence[Check]) -> Result:
        now = time.time()
        keys: list[str] = []
        queued, ops = self._take(keys)
        specs: list[str] = []
        for c in checks:
            keys.extend(self._keys(c.ledger))
            if c.budget:  # a period's counter lives until the period is over (all-time: forever)
                kind, keep = (
                    ("b" if c.enforce else "w"),
                    (0 if c.keep_until is None else _ms_until(c.keep_until, now)),
                )
            else:
                kind, keep = "c", int(c.ttl * 1000) + _GRACE_MS
            specs.append(f"{kind} {c.limit} {c.amount} {int(c.ttl * 1000)} {keep}")
        try:
            reply = (await self._step(keys=keys, args=[ops, entry, " ".join(specs)])).split()
        except BaseException as exc:
            self._done(queued, exc)
            raise
        self._done(queued)
        n = len(checks)
        status = int(reply[0])
        return Result(
            admitted=status == 1,
            failed=int(reply[1]),
            retry_after=int(reply[2]) / 1000.0,
            used=[int(x) for x in reply[3 : 3 + n]],
            unseeded=[int(x) for x in reply[3 + n :]],
        )

    async def seed(self, ledger: str, spent: int, keep_until: float | None) -> None:
        keep = 0 if keep_until is None else _ms_until(keep_until, time.time())
        await self._seed(keys=list(self._keys(ledger)), args=[spent, keep])

    async def read(self, ledger: str) -> tuple[int | None, int]:
        await self.flush()
        spent, total = await self._read(keys=list(self._keys(ledger)))
        return (int(spent) if spent else None), int(total)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._flush_quietly()
        for task in list(self._flushes):
            await task
        await self._redis.aclose()

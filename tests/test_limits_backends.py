"""The ledger backends, memory and Redis, against one suite: same inputs, same answers, including
many admissions at once (the atomicity budgets and limits rely on)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from conftest import REDIS_URL
from redis.asyncio import Redis

from tollway.limits.ledger import Backend, Check, Op, Settlement
from tollway.limits.memory import MemoryBackend
from tollway.limits.redis import RedisBackend


async def drop_prefix(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match="{" + prefix + "}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    prefix = f"tollway-test-{uuid.uuid4().hex[:12]}"
    redis_backend = RedisBackend(
        REDIS_URL, prefix=prefix, timeout=5.0
    )  # a busy 2-core CI box can be slow to connect
    try:
        yield redis_backend
    finally:
        await redis_backend.close()
        await drop_prefix(prefix)


def window(name: str, limit: int, amount: int = 1, ttl: float = 60.0) -> Check:
    return Check(name, limit, amount, ttl)


def budget(name: str, limit: int, amount: int, enforce: bool = True) -> Check:
    return Check(name, limit, amount, 60.0, budget=True, enforce=enforce, keep_until=None)


async def test_window_admits_exactly_the_limit_under_concurrency(backend: Backend) -> None:
    results = await asyncio.gather(*(backend.admit(f"e{i}", [window("r:key:a", 100)]) for i in range(400)))
    assert sum(r.admitted for r in results) == 100
    refused = [r for r in results if not r.admitted]
    assert all(r.failed == 0 and 50 < r.retry_after <= 60 for r in refused)
    assert await backend.read("r:key:a") == (None, 100)


async def test_all_or_nothing(backend: Backend) -> None:
    assert (await backend.admit("e1", [window("r:key:b", 5), window("r:tenant:t", 1)])).admitted
    refused = await backend.admit("e2", [window("r:key:b", 5), window("r:tenant:t", 1)])
    assert not refused.admitted and refused.failed == 1 and refused.used == [1, 1]
    assert await backend.read("r:key:b") == (None, 1)  # e2 left no trace in the first ledger


async def test_entries_expire_and_retry_after_says_when(backend: Backend) -> None:
    assert (await backend.admit("e1", [window("r:key:c", 1, ttl=0.4)])).admitted
    refused = await backend.admit("e2", [window("r:key:c", 1, ttl=0.4)])
    assert not refused.admitted and 0.2 < refused.retry_after <= 0.4
    await asyncio.sleep(0.45)
    ok = await backend.admit("e3", [window("r:key:c", 1, ttl=0.4)])
    assert ok.admitted and ok.used == [1]


async def test_tokens_are_corrected_after_the_call(backend: Backend) -> None:
    assert (await backend.admit("e1", [window("t:key:d", 1000, amount=800)])).admitted
    assert not (await backend.admit("e2", [window("t:key:d", 1000, amount=300)])).admitted
    await backend.settle("e1", [Settlement("t:key:d", Op.SET, 150)])
    assert await backend.read("t:key:d") == (None, 150)
    ok = await backend.admit("e2", [window("t:key:d", 1000, amount=300)])
    assert ok.admitted and ok.used == [450]


async def test_tokens_retry_after_waits_for_enough_to_free(backend: Backend) -> None:
    await backend.admit("e1", [window("t:key:e", 100, amount=30, ttl=1.0)])
    await asyncio.sleep(0.5)
    await backend.admit("e2", [window("t:key:e", 100, amount=60, ttl=1.0)])
    refused = await backend.admit("e3", [window("t:key:e", 100, amount=50, ttl=1.0)])
    # freeing e1's 30 (in ~0.5 s) is not enough for 50 more; e2 must go too (in ~1 s)
    assert not refused.admitted and 0.75 < refused.retry_after <= 1.0


async def test_concurrency_lease_is_released(backend: Backend) -> None:
    lease = window("c:key:f", 2, ttl=600)
    assert (await backend.admit("e1", [lease])).admitted
    assert (await backend.admit("e2", [lease])).admitted
    assert not (await backend.admit("e3", [lease])).admitted
    await backend.settle("e1", [Settlement("c:key:f", Op.RELEASE)])
    assert (await backend.admit("e3", [lease])).admitted


async def test_budget_needs_seeding_then_reserves_atomically(backend: Backend) -> None:
    first = await backend.admit("e0", [window("r:key:g", 1000), budget("b:key:g:2025-01", 1000, 10)])
    assert not first.admitted and first.unseeded == [1]
    assert await backend.read("r:key:g") == (None, 0)  # nothing recorded while unseeded
    await backend.seed("b:key:g:2025-01", 300, None)
    await backend.seed("b:key:g:2025-01", 999, None)  # a second seeder finds it set: no effect
    results = await asyncio.gather(
        *(backend.admit(f"e{i}", [budget("b:key:g:2025-01", 1000, 10)]) for i in range(200))
    )
    admitted = [i for i, r in enumerate(results) if r.admitted]
    assert len(admitted) == 70  # (1000 - 300) / 10
    assert await backend.read("b:key:g:2025-01") == (300, 700)
    # settle: half spend their full reservation, the rest are released (failed calls)
    await asyncio.gather(
        *(
            backend.settle(f"e{i}", [Settlement("b:key:g:2025-01", Op.SPEND, 10 if n % 2 else 0)])
            for n, i in enumerate(admitted)
        )
    )
    assert await backend.read("b:key:g:2025-01") == (300 + 35 * 10, 0)


async def test_warn_budget_records_but_never_refuses(backend: Backend) -> None:
    await backend.seed("b:gateway:0:all", 95, None)
    result = await backend.admit("e1", [budget("b:gateway:0:all", 100, 10, enforce=False)])
    assert result.admitted and result.used == [105]


async def test_settling_an_unknown_entry_is_harmless(backend: Backend) -> None:
    await backend.seed("b:key:h:all", 0, None)
    await backend.settle(
        "nobody",
        [
            Settlement("b:key:h:all", Op.SPEND, 7),
            Settlement("t:key:h", Op.SET, 5),
            Settlement("c:key:h", Op.RELEASE),
        ],
    )
    assert await backend.read("b:key:h:all") == (7, 0)  # spend without a reservation (fail_open) still counts
    assert await backend.read("t:key:h") == (None, 0)

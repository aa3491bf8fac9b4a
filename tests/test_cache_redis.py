"""The Redis answer store against the real Redis of ``TOLLWAY_TEST_REDIS`` (a fresh key prefix per
test): LRU and byte bounds, TTL, two gateway *processes* sharing answers, and a Redis that is not there."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from conftest import REDIS_URL, GatewayFactory, two_provider_config
from redis.asyncio import Redis

from tollway.cache.entry import Entry
from tollway.cache.redis import RedisStore
from tollway.mock import RunningMock

MSG: Any = [{"role": "user", "content": "shared between processes"}]


async def drop(prefix: str) -> None:
    r = Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match="{" + prefix + ":cache}*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"tollway-test-{uuid.uuid4().hex[:12]}"
    yield name
    await drop(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_lru_and_byte_bounds(prefix: str) -> None:
    store = RedisStore(REDIS_URL, prefix=prefix, timeout=1, max_entries=3, max_bytes=10_000)
    for i in range(3):
        await store.put(f"k{i}", Entry(b"x" * 100, "t"), ttl=60)
    assert await store.get("k0") is not None  # k0 is now the most recently used
    await store.put("k3", Entry(b"x" * 100, "t"), ttl=60)
    assert await store.get("k1") is None  # the least recently used went
    assert all([await store.get(k) for k in ("k0", "k2", "k3")])
    stats = await store.stats()
    assert stats["entries"] == 3 and 300 < stats["bytes"] < 600
    await store.put("big", Entry(b"y" * 9_800, "t"), ttl=60)  # fits only alone
    assert (await store.stats())["entries"] == 1 and (await store.get("big")) is not None
    got = await store.get("big")
    assert got is not None and got.body == b"y" * 9_800 and got.tenant == "t"
    await store.close()


async def test_ttl(prefix: str) -> None:
    store = RedisStore(REDIS_URL, prefix=prefix, timeout=1, max_entries=10, max_bytes=10_000)
    await store.put("short", Entry(b"{}", "t"), ttl=0.2)
    assert await store.get("short") is not None
    await asyncio.sleep(0.3)
    assert await store.get("short") is None
    await store.close()


@pytest.fixture
def other_process(tmp_path: Path, mock_a: RunningMock, prefix: str) -> Iterator[int]:
    """A second gateway: ``tollway start`` in a process of its own, sharing the Redis cache."""
    port = free_port()
    config = tmp_path / "other.toml"
    config.write_text(f"""
[storage]
url = "sqlite:///{tmp_path / "other.db"}"

[[providers]]
name = "mock-a"
kind = "mock"
base_url = "{mock_a.url}/v1"
models = ["gpt-4o-mini"]

[cache]
backend = "redis"
redis_prefix = "{prefix}"
redis_timeout = 5.0
temperature_policy = "cache"
""")
    with (tmp_path / "other.log").open("wb") as log:  # the child writes to its own copy
        proc = subprocess.Popen(
            [sys.executable, "-m", "tollway", "start", "--config", str(config), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "other.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        raise TimeoutError("the second gateway did not start")
    yield port
    proc.terminate()
    proc.wait(10)


async def test_two_processes_share_answers(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, prefix: str, other_process: int
) -> None:
    here = await gateway_factory(
        two_provider_config(
            mock_a.url,
            mock_b.url,
            cache={
                "backend": "redis",
                "redis_prefix": prefix,
                "redis_timeout": 5.0,
                "temperature_policy": "cache",
            },
        )
    )
    a = openai.AsyncOpenAI(base_url=f"{here.url}/v1", api_key="k", max_retries=0)
    b = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{other_process}/v1", api_key="k", max_retries=0)
    first = await a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert first.headers["x-tollway-cache"] == "miss"
    there = await b.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert there.headers["x-tollway-cache"] == "hit"
    assert there.parse().choices[0].message.content == first.parse().choices[0].message.content
    async with b.chat.completions.stream(model="gpt-4o-mini", messages=MSG) as s:  # a stream hit over there
        final = await s.get_final_completion()
    assert final.choices[0].message.content == first.parse().choices[0].message.content
    # and the other way: a stream through the other process fills the cache for this one
    other: Any = [{"role": "user", "content": "streamed over there"}]
    async with b.chat.completions.stream(model="gpt-4o-mini", messages=other) as s:
        streamed = await s.get_final_completion()
    back = await a.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=other)
    assert back.headers["x-tollway-cache"] == "hit"
    assert back.parse().choices[0].message.content == streamed.choices[0].message.content
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 2
    await a.close()
    await b.close()


async def test_unreachable_redis_is_a_miss_not_an_error(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(
        two_provider_config(
            mock_a.url,
            mock_b.url,
            cache={
                "backend": "redis",
                "redis_url": f"redis://127.0.0.1:{free_port()}/0",
                "redis_timeout": 0.2,
                "temperature_policy": "cache",
            },
        )
    )
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)
    for _ in range(2):
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.headers["x-tollway-cache"] == "miss" and raw.parse().choices[0].message.content
    rt = gw.gateway.runtime
    assert rt is not None and rt.cache is not None and rt.cache.unavailable >= 2
    await c.close()

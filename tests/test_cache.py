"""The exact response cache over real sockets: the official openai SDK as client, fake providers
upstream. Hits in both shapes (body ⇄ stream), what is never cached, Cache-Control, the temperature
policy, per-model switches, tenant isolation, TTL and eviction, saved money in the log and /stats."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import GatewayFactory, two_provider_config
from multidict import CIMultiDict

from tollway.cache.entry import Entry
from tollway.cache.memory import MemoryStore
from tollway.cache.policy import Policy
from tollway.call import Call, Endpoint
from tollway.config import CacheConfig
from tollway.mock import RunningMock
from tollway.protocols.openai import OPENAI
from tollway.server import RunningServer

ADMIN = "admin-secret-token"
ON = {"temperature_policy": "cache"}  # cache every call, whatever its temperature


def client(gw: RunningServer, key: str = "k") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


def msgs(text: str) -> Any:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


async def create(c: openai.AsyncOpenAI, text: str, **kw: Any) -> tuple[str, Any]:
    raw = await c.chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o-mini"), messages=msgs(text), **kw
    )
    return raw.headers.get("x-tollway-cache", ""), raw.parse()


async def stream_final(c: openai.AsyncOpenAI, text: str, **kw: Any) -> Any:
    async with c.chat.completions.stream(model="gpt-4o-mini", messages=msgs(text), **kw) as s:
        return await s.get_final_completion()


async def raw_post(
    gw: RunningServer, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/chat/completions", data=orjson.dumps(body), headers=headers or {}) as r,
    ):
        return r.status, CIMultiDict(r.headers), await r.read()


async def rows(gw: RunningServer, n: int) -> list[Any]:
    rt = gw.gateway.runtime
    assert rt is not None and rt.store is not None
    deadline = time.monotonic() + 5
    while True:
        found = await rt.store.recent(200)
        if len(found) >= n or time.monotonic() > deadline:
            return sorted(found, key=lambda r: r.ts)
        await asyncio.sleep(0.05)


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, cache=ON, storage={"flush_interval": 0.05})
    )


def upstream(*mocks: RunningMock) -> int:
    return sum(m.stats()["requests"] for m in mocks)


async def test_body_hit_then_stream_hit(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = client(gw)
    status, first = await create(c, "hello")
    assert status == "miss"
    status, second = await create(c, "hello")
    assert status == "hit" and second.model_dump() == first.model_dump()
    # a streaming client of the same request gets the answer as a stream the SDK reassembles
    final = await stream_final(c, "hello", stream_options={"include_usage": True})
    assert final.choices[0].message.content == first.choices[0].message.content
    assert final.choices[0].finish_reason == "stop" and final.usage == first.usage
    assert upstream(mock_a, mock_b) == 1
    # raw: role first, [DONE] last, no usage chunk unless asked for
    status_code, headers, raw = await raw_post(
        gw, {"model": "gpt-4o-mini", "messages": msgs("hello"), "stream": True}
    )
    assert status_code == 200 and headers["x-tollway-cache"] == "hit"
    assert headers["content-type"].startswith("text/event-stream")
    events = [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e.startswith(b"data: {")]
    assert events[0]["choices"][0]["delta"]["role"] == "assistant" and raw.endswith(b"data: [DONE]\n\n")
    assert all(e["choices"] for e in events) and all(e["object"] == "chat.completion.chunk" for e in events)
    await c.close()


async def test_stream_fills_the_cache(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = client(gw)
    streamed = await stream_final(c, "tell me a story")
    status, body = await create(c, "tell me a story")
    assert status == "hit"
    assert body.choices[0].message.content == streamed.choices[0].message.content
    assert body.usage is not None and body.usage.completion_tokens > 0  # usage kept though not streamed
    again = await stream_final(c, "tell me a story")
    assert again.choices[0].message.content == streamed.choices[0].message.content
    assert upstream(mock_a, mock_b) == 1
    await c.close()


async def test_what_is_never_cached(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = client(gw)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    for _ in range(2):  # a tool call waits for its result: never cached
        status, answer = await create(c, "weather in Paris?", tools=tools, tool_choice="required")
        assert answer.choices[0].finish_reason == "tool_calls" and status == "miss"
    # errors are not cached
    await mock_a.set_fault(status=500)
    await mock_b.set_fault(status=500)
    with pytest.raises(openai.APIStatusError):
        await create(c, "flaky")
    await mock_a.clear_fault()
    await mock_b.clear_fault()
    assert (await create(c, "flaky"))[0] == "miss"
    # a stream cut short after its first events is not cached
    await mock_a.set_fault(cut_after=2)
    with pytest.raises(openai.APIError):
        await stream_final(c, "cut short")
    await mock_a.clear_fault()
    assert (await create(c, "cut short"))[0] == "miss"
    assert (await create(c, "cut short"))[0] == "hit"
    await c.close()


async def test_cache_control(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = client(gw)
    assert (await create(c, "cc", extra_headers={"Cache-Control": "no-store"}))[0] == "bypass"
    assert (await create(c, "cc"))[0] == "miss"  # no-store kept nothing
    assert (await create(c, "cc", extra_headers={"Cache-Control": "no-cache"}))[0] == "bypass"
    assert upstream(mock_a, mock_b) == 3  # no-cache did not look up...
    status, fresh = await create(c, "cc2", extra_headers={"Cache-Control": "no-cache"})
    status, cached = await create(c, "cc2")
    assert (
        status == "hit" and cached.choices[0].message.content == fresh.choices[0].message.content
    )  # ...but stored
    await c.close()


async def test_temperature_policy_and_model_switches(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    # the defaults: caching on, temperature_policy "skip": only temperature-0 calls are cached
    gw = await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, cache={"models": {"gpt-4o": False}})
    )
    c = client(gw)
    assert (await create(c, "t"))[0] == "bypass"  # no temperature: the provider samples
    assert (await create(c, "t", temperature=0.7))[0] == "bypass"
    assert (await create(c, "t", temperature=0))[0] == "miss"
    assert (await create(c, "t", temperature=0))[0] == "hit"
    assert (await create(c, "t", temperature=0, model="gpt-4o"))[0] == "bypass"  # switched off for this model
    assert (await create(c, "t", temperature=0, model="gpt-4o"))[0] == "bypass"
    await c.close()


def test_policy_per_key_and_patterns() -> None:
    policy = Policy(
        CacheConfig(enabled=False, temperature_policy="cache", models={"gpt-4o*": True, "gpt-4o-x": False})
    )
    call = Call("r", OPENAI, Endpoint.CHAT, {"messages": []}, "gpt-4o-mini", False)
    assert policy.decide(call).active
    call.model = "gpt-4o-x"
    assert not policy.decide(call).active  # an exact name wins over a pattern
    call.model = "o4-mini"
    assert not policy.decide(call).active  # cache.enabled = false
    call.model, call.cache_enabled = "gpt-4o", False  # stage 1 switched caching off for this key
    assert not policy.decide(call).active


async def test_tenants_never_share(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url, cache=ON, admin={"token": ADMIN}))
    secrets = {}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN}"}) as s:
        for name, tenant in (("a1", "acme"), ("a2", "acme"), ("g1", "globex")):
            async with s.post(
                f"{gw.url}/admin/keys", data=orjson.dumps({"name": name, "tenant": tenant})
            ) as r:
                assert r.status == 201, await r.text()
                secrets[name] = (await r.json())["key"]
    a1, a2, g1 = (client(gw, secrets[n]) for n in ("a1", "a2", "g1"))
    assert (await create(a1, "secret plans"))[0] == "miss"
    assert (await create(g1, "secret plans"))[0] == "miss"  # another tenant: never a hit
    assert (await create(a2, "secret plans"))[0] == "hit"  # another key of the same tenant
    assert (await create(g1, "secret plans"))[0] == "hit"
    assert upstream(mock_a, mock_b) == 2
    for c in (a1, a2, g1):
        await c.close()


async def test_ttl_and_eviction(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, cache={**ON, "ttl": 0.4, "max_entries": 2})
    )
    c = client(gw)
    assert (await create(c, "one"))[0] == "miss"
    assert (await create(c, "one"))[0] == "hit"
    await asyncio.sleep(0.5)
    assert (await create(c, "one"))[0] == "miss"  # expired
    assert (await create(c, "two"))[0] == "miss"
    assert (await create(c, "three"))[0] == "miss"  # evicts "one", the least recently used
    assert (await create(c, "three"))[0] == "hit"
    assert (await create(c, "two"))[0] == "hit"
    assert (await create(c, "one"))[0] == "miss"
    await c.close()


def test_memory_store_bounds() -> None:
    now = [0.0]
    store = MemoryStore(max_entries=100, max_bytes=3 * (1000 + 400), clock=lambda: now[0])
    for i in range(4):
        store.put_now(f"k{i}", Entry(b"x" * 1000, ""), ttl=10)
    assert len(store) == 3 and store.get_now("k0") is None  # the byte bound evicted the oldest
    assert store.get_now("k1") is not None  # now the most recently used
    store.put_now("k4", Entry(b"x" * 1000, ""), ttl=10)
    assert store.get_now("k2") is None and store.get_now("k1") is not None
    now[0] = 11
    assert store.get_now("k1") is None and store.bytes < 3 * 1400
    store.put_now("big", Entry(b"x" * 10_000, ""), ttl=10)  # larger than the whole cache: not kept
    assert store.get_now("big") is None


async def test_savings_in_log_stats_and_spend(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    c = client(gw)
    await create(c, "what does this cost")
    for _ in range(3):
        assert (await create(c, "what does this cost"))[0] == "hit"
    found = await rows(gw, 4)
    assert [r.cache_status for r in found] == ["miss", "hit", "hit", "hit"]
    miss, hits = found[0], found[1:]
    assert miss.cost is not None and miss.cost > 0 and miss.saved_cost is None
    assert all(h.cost == 0 and h.saved_cost == pytest.approx(miss.cost) for h in hits)
    assert all(h.input_tokens == 0 and h.output_tokens == 0 for h in hits)  # no tokens were billed
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/stats") as r:
        stats = await r.json()
    assert stats["requests"] == 4 and stats["hits"]["hit"] == 3 and stats["misses"] == 1
    assert stats["saved_usd"] == pytest.approx(3 * miss.cost, rel=1e-3)
    assert stats["cost_usd"] == pytest.approx(miss.cost, rel=1e-3)
    assert stats["cache"]["store"]["entries"] == 1
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/stats?period=nope") as r:
        assert r.status == 400
    rt = gw.gateway.runtime
    assert rt is not None and rt.store is not None
    (total,) = await rt.store.spend(since=0, group_by=())
    assert total.saved == pytest.approx(3 * miss.cost) and total.cost == pytest.approx(miss.cost)
    await c.close()


async def test_spend_report_shows_saved(gw: RunningServer) -> None:
    from rich.console import Console

    from tollway.cli.reports import print_spend

    c = client(gw)
    await create(c, "report me")
    await create(c, "report me")
    await rows(gw, 2)
    console = Console(record=True, width=200)
    await print_spend(gw.gateway.storage, ["model"], "all", console=console)
    text = console.export_text()
    assert "Saved" in text
    await c.close()


async def test_embeddings_are_cached(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = client(gw)
    raw1 = await c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi there")
    raw2 = await c.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi there")
    assert raw1.headers["x-tollway-cache"] == "miss" and raw2.headers["x-tollway-cache"] == "hit"
    assert raw1.parse().data[0].embedding == raw2.parse().data[0].embedding
    assert upstream(mock_a, mock_b) == 1
    await c.close()


async def test_the_key_ignores_stream_and_user_fields_only(gw: RunningServer) -> None:
    c = client(gw)
    assert (await create(c, "fields", user="alice"))[0] == "miss"
    assert (await create(c, "fields", user="bob"))[0] == "hit"
    assert (await create(c, "fields", max_tokens=5))[0] == "miss"  # changes the answer: another key
    assert (await create(c, "fields", seed=3))[0] == "miss"
    assert (await create(c, "fields", model="gpt-4o"))[0] == "miss"
    await c.close()

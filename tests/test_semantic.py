"""The semantic cache through the gateway, with the bundled MiniLM model: a paraphrase of the last user
message is a hit (with its similarity), a different question or a different conversation is not,
the lexical guard vetoes what embeddings confuse, and the index is shared through Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from conftest import REDIS_URL, GatewayFactory, two_provider_config
from redis.asyncio import Redis

from tollway.cache.embed import LocalEmbedder
from tollway.cache.guard import agree
from tollway.errors import EmbedderUnavailable
from tollway.mock import RunningMock
from tollway.server import RunningServer

SEMANTIC = {"temperature_policy": "cache", "semantic": {"enabled": True}}


def ask(system: str, text: str) -> Any:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


async def create(c: openai.AsyncOpenAI, messages: Any) -> tuple[dict[str, str], Any]:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    return dict(raw.headers), raw.parse()


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(two_provider_config(mock_a.url, mock_b.url, cache=SEMANTIC))


async def test_a_paraphrase_is_a_hit(gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)
    headers, first = await create(c, ask("Be brief.", "What is the capital of France?"))
    assert headers["x-tollway-cache"] == "miss"
    headers, second = await create(c, ask("Be brief.", "What's the capital of France?"))
    assert headers["x-tollway-cache"] == "semantic"
    assert 0.9 < float(headers["x-tollway-cache-similarity"]) <= 1.0
    assert second.choices[0].message.content == first.choices[0].message.content
    # a streaming client of a paraphrase gets the answer as a stream
    async with c.chat.completions.stream(
        model="gpt-4o-mini", messages=ask("Be brief.", "What is the capital of France ?")
    ) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.content == first.choices[0].message.content
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1
    # another question that embeds close by: the guard says no
    headers, _ = await create(c, ask("Be brief.", "What is the capital of Germany?"))
    assert headers["x-tollway-cache"] == "miss"
    # the same question in another conversation (another system prompt): no hit
    headers, _ = await create(c, ask("Answer in French.", "What's the capital of France?"))
    assert headers["x-tollway-cache"] == "miss"
    # embeddings call these the same (0.997); the guard sees the words swapped
    headers, _ = await create(c, ask("Be brief.", "How do you convert ethane to ethene?"))
    headers, _ = await create(c, ask("Be brief.", "How do you convert ethene to ethane?"))
    assert headers["x-tollway-cache"] == "miss"
    rt = gw.gateway.runtime
    assert rt is not None and rt.cache is not None and rt.cache.semantic is not None
    stats = rt.cache.semantic.stats()
    assert stats["matches"] == 2 and stats["prompts"] == 5 and stats["vetoed"] >= 1
    await c.close()


def test_guard() -> None:
    assert agree("What is the capital of France?", "what's the capital of france")
    assert agree("How do I get rid of pimple marks?", "How do I get rid of pimple mark")
    assert not agree("How do you convert ethane to ethene?", "How do you convert ethene to ethane?")
    assert not agree("Is it safe at 37 weeks?", "Is it safe at 35 weeks?")
    assert not agree("Is it safe to fly?", "Is it not safe to fly?")
    assert not agree("What is the difference between C and C++?", "What is the difference between C and C#?")
    assert not agree("How do I learn Python?", "How do you learn Python?")


def test_a_missing_model_fails_loudly() -> None:
    with pytest.raises(EmbedderUnavailable, match="model_path"):
        LocalEmbedder(model_path="/nonexistent/model.onnx").load()


def test_long_prompts_get_no_vector() -> None:
    embedder = LocalEmbedder()
    assert embedder.embed_now("word " * 300) is None  # beyond what the model reads: never "the same"
    vector = embedder.embed_now("a short question")
    assert vector is not None and vector.shape == (384,) and abs(float(vector @ vector) - 1) < 1e-5


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"tollway-test-{uuid.uuid4().hex[:12]}"
    yield name
    r = Redis.from_url(REDIS_URL)
    keys = [k async for k in r.scan_iter(match="{" + name + ":cache}*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_the_index_is_shared_through_redis(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, prefix: str
) -> None:
    cfg = two_provider_config(
        mock_a.url, mock_b.url, cache={**SEMANTIC, "backend": "redis", "redis_prefix": prefix}
    )
    one, two = await gateway_factory(cfg), await gateway_factory(cfg)  # two caches, one Redis
    a = openai.AsyncOpenAI(base_url=f"{one.url}/v1", api_key="k", max_retries=0)
    b = openai.AsyncOpenAI(base_url=f"{two.url}/v1", api_key="k", max_retries=0)
    headers, first = await create(a, ask("Be brief.", "How do I reset my router password?"))
    assert headers["x-tollway-cache"] == "miss"
    headers, second = await create(b, ask("Be brief.", "How do I reset my router's password"))
    assert headers["x-tollway-cache"] == "semantic"
    assert second.choices[0].message.content == first.choices[0].message.content
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1
    await a.close()
    await b.close()


async def test_identical_calls_in_flight_still_share_one_upstream_call(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    import asyncio

    await mock_a.set_fault(latency_ms=300)
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)
    results = await asyncio.gather(
        *(create(c, ask("Be brief.", "How tall is Mount Everest?")) for _ in range(50))
    )
    assert {r[1].choices[0].message.content for r in results} and len(
        {r[1].choices[0].message.content for r in results}
    ) == 1
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1
    statuses = sorted(r[0]["x-tollway-cache"] for r in results)
    assert statuses.count("miss") == 1 and statuses.count("dedup") == 49
    await c.close()

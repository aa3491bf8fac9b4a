"""In-flight deduplication over real sockets: identical concurrent calls make one upstream call, every
caller gets the whole answer (streams from their first event), one row pays, the others record what
they saved; a leaving client takes nothing from the others; a failure reaches everyone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import GatewayFactory, two_provider_config

from tollway.mock import RunningMock
from tollway.server import RunningServer

ON = {"temperature_policy": "cache"}
MSG: Any = [{"role": "user", "content": "share this answer"}]


def client(gw: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0, timeout=30)


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, cache=ON, storage={"flush_interval": 0.05})
    )


async def rows(gw: RunningServer, n: int) -> list[Any]:
    rt = gw.gateway.runtime
    assert rt is not None and rt.store is not None
    deadline = time.monotonic() + 10
    while True:
        found = await rt.store.recent(1000)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_100_identical_calls_one_upstream_request(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(latency_ms=300)
    c = client(gw)

    async def one(i: int) -> tuple[str, str]:
        if i % 2:
            raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
            return raw.headers["x-tollway-cache"], raw.parse().choices[0].message.content or ""
        raw_stream = await c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG, stream=True
        )
        text = "".join([ch.choices[0].delta.content or "" async for ch in raw_stream.parse() if ch.choices])
        return raw_stream.headers["x-tollway-cache"], text

    results = await asyncio.gather(*(one(i) for i in range(100)))
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1
    assert len({text for _, text in results}) == 1 and results[0][1].startswith("Mock reply")
    statuses = sorted(status for status, _ in results)
    assert statuses.count("miss") == 1 and statuses.count("dedup") == 99
    logged = await rows(gw, 100)
    paid = [r for r in logged if r.cache_status == "miss"]
    shared = [r for r in logged if r.cache_status == "dedup"]
    assert len(paid) == 1 and len(shared) == 99 and all(r.status == 200 for r in logged)
    assert paid[0].cost and paid[0].cost > 0 and paid[0].output_tokens > 0
    assert all(r.cost == 0 and r.saved_cost == pytest.approx(paid[0].cost) for r in shared)
    assert all(r.provider == paid[0].provider for r in shared)
    # the answer was stored too: the next identical call is a hit
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["x-tollway-cache"] == "hit"
    await c.close()


async def read_stream(url: str, body: bytes, *, stop_after: int | None = None) -> list[bytes]:
    """The SSE events of one streamed call; with ``stop_after``, hang up after that many events."""
    events: list[bytes] = []
    async with aiohttp.ClientSession() as s, s.post(url, data=body) as r:
        buffer = b""
        async for piece in r.content.iter_any():
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                events.append(event)
                if stop_after is not None and len(events) >= stop_after:
                    return events
    return events


def text_of(events: list[bytes]) -> str:
    out = []
    for e in events:
        if e.startswith(b"data: {"):
            for choice in orjson.loads(e[6:])["choices"]:
                out.append(choice["delta"].get("content") or "")
    return "".join(out)


async def test_leader_leaving_keeps_followers_answers(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(chunk_delay_ms=60)
    url = f"{gw.url}/v1/chat/completions"
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "stream": True})
    leader = asyncio.create_task(read_stream(url, body, stop_after=6))
    await asyncio.sleep(0.1)  # the leader's stream is under way (one event every 60 ms)
    late = [asyncio.create_task(read_stream(url, body)) for _ in range(3)]
    plain = asyncio.create_task(aiohttp_json(url, {"model": "gpt-4o-mini", "messages": MSG}))
    assert len(await leader) == 6  # ... and it hangs up mid-stream
    answers = await asyncio.gather(*late)
    reply = await plain
    for events in answers:  # late joiners got the whole stream, from its first event
        assert events[-1] == b"data: [DONE]"
        assert orjson.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"
    texts = {text_of(events) for events in answers}
    assert texts == {reply["choices"][0]["message"]["content"]}
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1
    logged = await rows(gw, 5)
    assert sorted(r.status for r in logged) == [200, 200, 200, 200, 499]
    # the leader left: one reader that stayed took over paying for the call
    assert sum(1 for r in logged if r.cost) == 1
    assert next(r for r in logged if r.cost).status == 200


async def aiohttp_json(url: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as s, s.post(url, data=orjson.dumps(body)) as r:
        assert r.status == 200
        return await r.json()


async def test_a_lone_client_leaving_stops_the_upstream_call(gw: RunningServer, mock_a: RunningMock) -> None:
    await mock_a.set_fault(chunk_delay_ms=100)
    url = f"{gw.url}/v1/chat/completions"
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "stream": True})
    await read_stream(url, body, stop_after=2)
    rt = gw.gateway.runtime
    assert rt is not None and rt.cache is not None
    deadline = time.monotonic() + 3
    while rt.flights and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not rt.flights  # cancelled, not streaming on for nobody
    (row,) = await rows(gw, 1)
    assert row.status == 499 and row.cache_status == "miss" and row.provider == "mock-a"
    await mock_a.clear_fault()
    raw = await aiohttp_json(url, {"model": "gpt-4o-mini", "messages": MSG})  # nothing was cached
    assert raw["choices"][0]["finish_reason"] == "stop"
    assert mock_a.stats()["requests"] == 2


async def test_a_failure_reaches_every_caller(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(status=500, latency_ms=200)
    await mock_b.set_fault(status=503, latency_ms=200)
    c = client(gw)

    async def one(i: int) -> int:
        try:
            if i % 2:
                await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
            else:
                async with c.chat.completions.stream(model="gpt-4o-mini", messages=MSG) as s:
                    await s.get_final_completion()
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    codes = await asyncio.gather(*(one(i) for i in range(20)))
    assert set(codes) == {503}  # the last deployment's overload, as one caller alone would have seen it
    # failover ran once for everyone: one try per deployment, not one per caller
    assert mock_a.stats()["requests"] == 1 and mock_b.stats()["requests"] == 1
    await c.close()


async def test_no_store_and_sampling_calls_are_not_shared(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url))  # temperature_policy "skip"
    await mock_a.set_fault(latency_ms=200)
    c = client(gw)
    await asyncio.gather(*(c.chat.completions.create(model="gpt-4o-mini", messages=MSG) for _ in range(5)))
    assert mock_a.stats()["requests"] == 5  # independent samples stay independent
    await asyncio.gather(
        *(
            c.chat.completions.create(
                model="gpt-4o-mini", messages=MSG, temperature=0, extra_headers={"Cache-Control": "no-store"}
            )
            for _ in range(5)
        )
    )
    assert mock_a.stats()["requests"] == 10
    await asyncio.gather(
        *(c.chat.completions.create(model="gpt-4o-mini", messages=MSG, temperature=0) for _ in range(5))
    )
    assert mock_a.stats()["requests"] == 11
    await c.close()

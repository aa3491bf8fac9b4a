"""One ``CallFinished`` per finished call, whatever path it took: a whole answer, a stream, one that
broke off mid-stream, a call that joined another in flight, a cache hit, a refusal at ingress and a
failure in the pipeline — each reaches the sinks exactly once, and the request log is one of them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import openai
import pytest
from conftest import GatewayFactory, two_provider_config

from tollway.mock import RunningMock
from tollway.observe.events import CallFinished
from tollway.observe.sinks import Sinks
from tollway.server import RunningServer

MSG: Any = [{"role": "user", "content": "tell every sink"}]
NO_STORE = {"Cache-Control": "no-store"}


class Recorder:
    def __init__(self) -> None:
        self.events: list[CallFinished] = []
        self.emit = self.events.append


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(
        two_provider_config(
            mock_a.url, mock_b.url, cache={"temperature_policy": "cache"}, storage={"flush_interval": 0.05}
        )
    )


def attach(gw: RunningServer) -> Recorder:
    rt = gw.gateway.runtime
    assert rt is not None
    recorder = Recorder()
    rt.sinks.add(recorder)
    return recorder


async def settled(recorder: Recorder, n: int) -> list[CallFinished]:
    deadline = time.monotonic() + 10
    while len(recorder.events) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # and nothing more arrives
    return recorder.events


async def test_every_path_emits_exactly_one_event(gw: RunningServer, mock_a: RunningMock) -> None:
    recorder = attach(gw)
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0, timeout=30)
    ids: dict[str, str] = {}

    whole = await c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, extra_headers=NO_STORE
    )
    ids["whole"] = whole.headers["x-request-id"]
    stream = await c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=NO_STORE
    )
    _ = [chunk async for chunk in stream.parse()]
    ids["stream"] = stream.headers["x-request-id"]

    await mock_a.set_fault(latency_ms=200)
    first, second = await asyncio.gather(
        *(c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG) for _ in range(2))
    )
    await mock_a.clear_fault()
    assert sorted([first.headers["x-tollway-cache"], second.headers["x-tollway-cache"]]) == ["dedup", "miss"]
    ids["miss"], ids["dedup"] = first.headers["x-request-id"], second.headers["x-request-id"]
    if first.headers["x-tollway-cache"] == "dedup":
        ids["miss"], ids["dedup"] = ids["dedup"], ids["miss"]
    hit = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert hit.headers["x-tollway-cache"] == "hit"
    ids["hit"] = hit.headers["x-request-id"]

    with pytest.raises(openai.NotFoundError) as missing:
        await c.chat.completions.create(model="no-such-model", messages=MSG)
    ids["failed"] = missing.value.response.headers["x-request-id"]
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gw.url}/v1/chat/completions", data=b"{not json") as refused,
    ):
        assert refused.status == 400
        ids["refused"] = refused.headers["x-request-id"]

    await mock_a.set_fault(cut_after=3)
    broken = await c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG, stream=True, extra_headers=NO_STORE
    )
    with pytest.raises(openai.APIError):
        _ = [chunk async for chunk in broken.parse()]
    ids["broken"] = broken.headers["x-request-id"]
    await c.close()

    events = await settled(recorder, len(ids))
    assert Counter(e.request_id for e in events) == Counter(ids.values())
    by = {name: next(e for e in events if e.request_id == rid) for name, rid in ids.items()}
    assert by["whole"].status == by["stream"].status == by["hit"].status == 200
    assert by["whole"].cost and by["stream"].cost and by["stream"].stream
    assert by["miss"].cache_status == "miss" and by["miss"].cost
    assert by["dedup"].cache_status == "dedup" and by["dedup"].cost == 0
    assert by["dedup"].saved_cost == pytest.approx(by["miss"].cost)
    assert by["hit"].cost == 0 and by["hit"].saved_cost == pytest.approx(by["miss"].cost)
    assert (by["failed"].status, by["failed"].error_type) == (404, "model_not_found")
    assert (by["refused"].status, by["refused"].error_type) == (400, "invalid_json")
    assert (by["broken"].status, by["broken"].error_type) == (502, "stream_interrupted")
    assert all(e.parent_request_id is None for e in events)

    # the request log got the same events
    rt = gw.gateway.runtime
    assert rt is not None
    await rt.writer.flush()
    logged = {r.request_id: r for r in await rt.store.recent(100)}
    assert all(logged[e.request_id] == e for e in events)


def test_sinks_bind_emit_to_the_only_sink_and_fan_out_to_several() -> None:
    one, two = Recorder(), Recorder()
    sinks = Sinks()
    event = CallFinished(
        0.0, "r", "", "m", "", "", 200, "", 0, 1.0, None, 0, 0, 0, 0, 0, None, False, False, ""
    )
    sinks.emit(event)  # nobody listens: nothing happens
    sinks.add(one)
    assert sinks.emit == one.emit  # the only sink is called directly: no loop on the request path
    sinks.add(two)
    sinks.emit(event)
    assert one.events == two.events == [event]
    sinks.remove(one)
    sinks.emit(event)
    assert len(one.events) == 1 and len(two.events) == 2

"""Every failover case, over real sockets, with fake providers injecting faults."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import MODELS, GatewayFactory, two_provider_config

from tollway.config import parse_config
from tollway.mock import MockOptions, RunningMock, start_mock
from tollway.server import RunningServer

MSG: Any = [{"role": "user", "content": "hello"}]


def client(gw: RunningServer, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0, **kw)


async def chat(
    gw: RunningServer, stream: bool = False, content: str = "hello"
) -> tuple[int, dict[str, str], bytes]:
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": content}]}
    )
    async with aiohttp.ClientSession() as s, s.post(f"{gw.url}/v1/chat/completions", data=body) as r:
        return r.status, dict(r.headers), await r.read()


async def backends(gw: RunningServer) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/v1/backends") as r:
        return {d["provider"]: d for d in (await r.json())["data"] if d["model"] == "gpt-4o-mini"}


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 429},
        {"status": 529},
        {"drop": True},
        {"status": 503, "error_style": "text"},
        {"status": 500, "error_style": "detail"},
    ],
)
async def test_retryable_failures_move_to_next(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock, fault: dict[str, Any]
) -> None:
    await mock_a.set_fault(**fault)
    c = client(gateway)
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-tollway-provider"] == "mock-b"
    assert raw.headers["x-tollway-attempts"] == "2"
    assert mock_a.stats()["requests"] == 1 and mock_b.stats()["requests"] == 1
    await c.close()


async def test_connection_refused_moves_to_next(gateway_factory: GatewayFactory, mock_b: RunningMock) -> None:
    gw = await gateway_factory(two_provider_config(f"http://127.0.0.1:{closed_port()}", mock_b.url))
    status, headers, _ = await chat(gw)
    assert status == 200 and headers["x-tollway-provider"] == "mock-b"
    status, headers, raw = await chat(gw, stream=True)
    assert status == 200 and headers["x-tollway-provider"] == "mock-b" and raw.endswith(b"data: [DONE]\n\n")


async def test_timeout_moves_to_next(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    cfg = parse_config(
        {
            "providers": [
                {
                    "name": "mock-a",
                    "kind": "mock",
                    "base_url": f"{mock_a.url}/v1",
                    "models": MODELS,
                    "timeout": 0.3,
                },
                {
                    "name": "mock-b",
                    "kind": "mock",
                    "base_url": f"{mock_b.url}/v1",
                    "models": MODELS,
                    "priority": 1,
                },
            ]
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(latency_ms=2000)
    t0 = time.perf_counter()
    status, headers, _ = await chat(gw)
    assert status == 200 and headers["x-tollway-provider"] == "mock-b"
    assert time.perf_counter() - t0 < 1.5
    status, headers, _ = await chat(gw, stream=True)
    assert status == 200 and headers["x-tollway-provider"] == "mock-b"


async def test_client_errors_are_not_retried(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(status=400)
    c = client(gateway)
    with pytest.raises(openai.BadRequestError) as info:
        await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert info.value.response.headers["x-tollway-attempts"] == "1"
    assert mock_b.stats()["requests"] == 0
    assert (await backends(gateway))["mock-a"]["state"] == "healthy"
    await c.close()


async def test_retry_after_takes_deployment_out_of_rotation(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(status=429, retry_after=30, times=1)
    status, headers, _ = await chat(gateway)
    assert status == 200 and headers["x-tollway-provider"] == "mock-b"
    # mock-a healed (times=1) but asked for 30 s: the next calls skip it without trying
    for _ in range(3):
        status, headers, _ = await chat(gateway)
        assert headers["x-tollway-provider"] == "mock-b" and headers["x-tollway-attempts"] == "1"
    assert mock_a.stats()["requests"] == 1
    state = (await backends(gateway))["mock-a"]
    assert state["available"] is False and 25 < state["retry_in_s"] <= 30


async def test_exhaustion_statuses(gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock) -> None:
    await mock_a.set_fault(status=500)
    await mock_b.set_fault(status=502)
    status, headers, raw = await chat(gateway)
    err = orjson.loads(raw)["error"]
    assert status == 502 and err["code"] == "upstreams_exhausted" and headers["x-tollway-attempts"] == "2"
    await mock_a.set_fault(status=429, retry_after=1)
    await mock_b.set_fault(status=429, retry_after=2)
    status, headers, raw = await chat(gateway)
    assert status == 429 and "retry-after" in {k.lower() for k in headers}


async def test_circuit_opens_then_no_healthy_upstream_503(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    cfg = parse_config(
        {
            "providers": [
                {"name": "mock-a", "kind": "mock", "base_url": f"{mock_a.url}/v1", "models": MODELS}
            ],
            "health": {"down_after": 2, "cooldown": 0.5},
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(status=500)
    assert (await chat(gw))[0] == 502
    assert (await backends(gw))["mock-a"]["state"] == "degraded"
    assert (await chat(gw))[0] == 502
    assert (await backends(gw))["mock-a"]["state"] == "down"
    status, headers, raw = await chat(gw)
    assert status == 503 and orjson.loads(raw)["error"]["code"] == "no_healthy_upstream"
    assert "retry-after" in {k.lower() for k in headers}
    assert mock_a.stats()["requests"] == 2  # the open circuit sent nothing
    await mock_a.clear_fault()
    await asyncio.sleep(0.6)
    assert (await chat(gw))[0] == 200  # the probe after the cooldown succeeds
    assert (await backends(gw))["mock-a"]["state"] == "healthy"


async def test_stream_fails_over_before_first_byte(gateway: RunningServer, mock_a: RunningMock) -> None:
    for fault in ({"status": 503}, {"drop": True}, {"cut_after": 0}):
        await mock_a.set_fault(**fault)
        c = client(gateway)
        s = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        text = "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
        assert text.startswith("Mock reply"), fault
        assert s.response.headers["x-tollway-provider"] == "mock-b"
        await c.close()


async def test_stream_cut_midway_ends_with_error_event(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(cut_after=3)
    await mock_b.set_fault(cut_after=3)
    status, _, raw = await chat(gateway, stream=True)
    assert status == 200
    events = [e for e in raw.split(b"\n\n") if e]
    assert b"[DONE]" not in raw
    last = orjson.loads(events[-1].removeprefix(b"data: "))
    assert last["error"]["code"] == "stream_interrupted"
    c = client(gateway)
    s = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in s:
            pass
    await c.close()


async def test_client_disconnect_cancels_upstream(
    gateway_factory: GatewayFactory, mock_b: RunningMock
) -> None:
    slow = await start_mock(options=MockOptions(models=MODELS, chunk_delay_ms=50))
    try:
        gw = await gateway_factory(two_provider_config(slow.url, mock_b.url))
        body = orjson.dumps(
            {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "long [[mock:words=200]]"}],
            }
        )
        async with aiohttp.ClientSession() as s:
            resp = await s.post(f"{gw.url}/v1/chat/completions", data=body)
            await resp.content.readany()
            resp.close()  # the client goes away ~10 s before the stream would end
        for _ in range(100):
            if (await backends(gw))["mock-a"]["inflight"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await backends(gw))["mock-a"]["inflight"] == 0
        runtime = gw.gateway.runtime
        assert runtime is not None and runtime.writer is not None
        await runtime.writer.flush()
        assert runtime.store is not None
        rows = await runtime.store.recent(5)
        assert rows[0].status == 499 and rows[0].error_type == "client_disconnected"
        assert rows[0].latency_ms < 2000
    finally:
        await slow.close()


async def test_client_disconnect_during_silent_upstream_is_not_a_timeout(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    cfg = parse_config(
        {
            "providers": [
                {
                    "name": "mock-a",
                    "kind": "mock",
                    "base_url": f"{mock_a.url}/v1",
                    "models": MODELS,
                    "timeout": 0.4,
                },
                {
                    "name": "mock-b",
                    "kind": "mock",
                    "base_url": f"{mock_b.url}/v1",
                    "models": MODELS,
                    "priority": 1,
                },
            ]
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(latency_ms=1500)
    request = asyncio.ensure_future(chat(gw, stream=True))
    await asyncio.sleep(0.15)  # the client leaves while mock-a is still silent, before its timeout
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.8)  # well past mock-a's timeout
    state = (await backends(gw))["mock-a"]
    assert state["inflight"] == 0 and state["state"] == "healthy"
    assert mock_a.stats()["requests"] == 1 and mock_b.stats()["requests"] == 0  # no failover: no timeout
    runtime = gw.gateway.runtime
    assert runtime is not None and runtime.writer is not None and runtime.store is not None
    await runtime.writer.flush()
    rows = await runtime.store.recent(5)
    assert rows[0].status == 499 and rows[0].error_type == "client_disconnected"


async def test_nonstandard_error_envelope_is_repaired(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    cfg = parse_config(
        {"providers": [{"name": "mock-a", "kind": "mock", "base_url": f"{mock_a.url}/v1", "models": MODELS}]}
    )
    gw = await gateway_factory(cfg)
    for style in ("string", "detail", "text"):
        await mock_a.set_fault(status=422, error_style=style)
        status, _, raw = await chat(gw)
        err = orjson.loads(raw)
        assert status == 422 and set(err["error"]) == {"message", "type", "param", "code"}, style
        assert err["error"]["message"].startswith("mock-a (HTTP 422): ")


async def test_aliases_try_targets_in_order(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    cfg = parse_config(
        {
            "providers": [
                {"name": "mock-a", "kind": "mock", "base_url": f"{mock_a.url}/v1", "models": ["gpt-4o"]},
                {"name": "mock-b", "kind": "mock", "base_url": f"{mock_b.url}/v1", "models": ["gpt-4o-mini"]},
            ],
            "aliases": {"smart": ["mock-a/gpt-4o", "mock-b/gpt-4o-mini"]},
        }
    )
    gw = await gateway_factory(cfg)
    c = client(gw)
    raw = await c.chat.completions.with_raw_response.create(model="smart", messages=MSG)
    assert raw.headers["x-tollway-provider"] == "mock-a" and raw.headers["x-tollway-model"] == "gpt-4o"
    await mock_a.set_fault(status=503)
    raw = await c.chat.completions.with_raw_response.create(model="smart", messages=MSG)
    assert raw.headers["x-tollway-provider"] == "mock-b" and raw.headers["x-tollway-model"] == "gpt-4o-mini"
    # explicit provider/model addressing
    raw = await c.chat.completions.with_raw_response.create(model="mock-b/gpt-4o-mini", messages=MSG)
    assert raw.headers["x-tollway-provider"] == "mock-b"
    await c.close()


async def test_recovered_primary_gets_its_traffic_back(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, health={"down_after": 1, "cooldown": 0.3})
    )
    await mock_a.set_fault(status=503)
    assert (await chat(gw))[1]["x-tollway-attempts"] == "2"
    status, headers, _ = await chat(gw)  # circuit open: straight to mock-b
    assert headers["x-tollway-provider"] == "mock-b" and headers["x-tollway-attempts"] == "1"
    await mock_a.clear_fault()
    await asyncio.sleep(0.35)
    status, headers, _ = await chat(gw)  # the probe is a real request, in the primary's place
    assert status == 200 and headers["x-tollway-provider"] == "mock-a"
    assert (await backends(gw))["mock-a"]["state"] == "healthy"

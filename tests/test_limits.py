"""Rate limits and budgets through a real gateway (memory backend): OpenAI's 429 envelope and
x-ratelimit headers, token estimates corrected after the call, concurrency slots, tenant limits,
block and warn budgets with reservations, and spend that survives a restart."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import openai
import orjson
import pytest
from conftest import REDIS_URL, GatewayFactory, two_provider_config
from multidict import CIMultiDict
from test_limits_backends import drop_prefix

from tollway.keys.spec import KeySpec, parse_limits
from tollway.limits.period import current
from tollway.limits.rules import Period
from tollway.mock import RunningMock
from tollway.mock.content import Ask, answer
from tollway.server import RunningServer

PROMPT = "hello"
PRICES = {"gpt-4o-mini": {"input": 1000.0, "output": 2000.0}}  # $0.001 / $0.002 per token
INPUT_TOKENS = 9  # what both tollway's estimate and the mock count for one user message "hello"


def exact_max_tokens() -> int:
    """A max_tokens the mock's reply fills exactly, so a call costs exactly its reservation."""
    return next(m for m in range(3, 30) if answer(Ask(PROMPT, 12, max_tokens=m)).completion_tokens == m)


MAX_TOKENS = exact_max_tokens()
CALL_COST = (INPUT_TOKENS * 1000.0 + MAX_TOKENS * 2000.0) / 1e6


async def chat(
    gw: RunningServer,
    key: str | None,
    *,
    max_tokens: int | None = MAX_TOKENS,
    stream: bool = False,
    model: str = "gpt-4o-mini",
) -> tuple[int, CIMultiDict[str], Any]:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
    }
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/chat/completions", data=orjson.dumps(payload), headers=headers) as r,
    ):
        raw = await r.read()
        return r.status, CIMultiDict(r.headers), raw if stream else orjson.loads(raw)


async def new_key(gw: RunningServer, **data: Any) -> tuple[str, str]:
    rt = gw.gateway.runtime
    assert rt is not None and rt.keys is not None
    key, secret = await rt.keys.repo.create(KeySpec.parse({"name": "k", **data}))
    return key.id, secret


async def flush(gw: RunningServer) -> None:
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None
    await rt.writer.flush()


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    """The ``[limits]`` section: every test here runs on both backends (Redis: the real server)."""
    if request.param == "memory":
        yield {"backend": "memory"}
        return
    prefix = f"tollway-test-{uuid.uuid4().hex[:12]}"
    # a generous client timeout: on a slow, busy 2-core CI box a round trip can pass the 0.5 s default
    yield {"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix, "redis_timeout": 5.0}
    await drop_prefix(prefix)


@pytest.fixture
async def gw(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, backend: dict[str, Any]
) -> RunningServer:
    return await gateway_factory(
        two_provider_config(
            mock_a.url, mock_b.url, prices=PRICES, limits=backend, keys={"refresh_interval": 0.2}
        )
    )


async def test_requests_per_minute(gw: RunningServer) -> None:
    _, secret = await new_key(gw, rpm=3)
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=secret, max_retries=0)
    msg: Any = [{"role": "user", "content": PROMPT}]
    remaining = []
    for _ in range(3):
        raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msg)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as info:
        await c.chat.completions.create(model="gpt-4o-mini", messages=msg)
    err = info.value
    assert err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    assert "3 requests per minute" in err.message
    headers = err.response.headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert 50 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    await c.close()


async def test_tokens_per_minute_estimate_is_corrected(gw: RunningServer) -> None:
    _, secret = await new_key(gw, tpm=100)
    status, headers, _ = await chat(gw, secret, max_tokens=80)  # admitted on 9 + 80; uses far fewer
    assert status == 200 and headers["x-ratelimit-remaining-tokens"] == str(100 - 89)
    # 9 + 60 more fits only because the first call's estimate became its real usage
    status, headers, _ = await chat(gw, secret, max_tokens=60)
    assert status == 200
    status, headers, body = await chat(gw, secret, max_tokens=60)
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert "tokens per minute" in body["error"]["message"] and "x-ratelimit-remaining-tokens" in headers
    status, headers, body = await chat(gw, secret, max_tokens=500)
    assert status == 429 and "Request too large" in body["error"]["message"]
    assert headers["x-should-retry"] == "false"


async def test_concurrency_slots(gw: RunningServer, mock_a: RunningMock) -> None:
    _, secret = await new_key(gw, concurrency=2)
    await mock_a.set_fault(latency_ms=300)
    results = await asyncio.gather(*(chat(gw, secret) for _ in range(5)))
    assert sorted(status for status, _, _ in results) == [200, 200, 429, 429, 429]
    assert all(
        "concurrent requests" in body["error"]["message"] for status, _, body in results if status == 429
    )
    assert (await chat(gw, secret))[0] == 200  # the slots were given back


async def test_tenant_limits_span_its_keys(gw: RunningServer) -> None:
    rt = gw.gateway.runtime
    assert rt is not None and rt.keys is not None
    await rt.keys.repo.put_tenant("acme", parse_limits({"rpm": 2}))
    await asyncio.sleep(0.4)  # the refresh brings the tenant in
    _, one = await new_key(gw, name="one", tenant="acme")
    _, two = await new_key(gw, name="two", tenant="acme")
    assert (await chat(gw, one))[0] == 200
    assert (await chat(gw, two))[0] == 200
    status, _, body = await chat(gw, one)
    assert status == 429 and "tenant 'acme'" in body["error"]["message"]


async def test_block_budget(gw: RunningServer) -> None:
    key_id, secret = await new_key(gw, budget=3 * CALL_COST)
    for _ in range(3):
        assert (await chat(gw, secret))[0] == 200
    c = openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1", api_key=secret
    )  # default retries: x-should-retry stops them
    started = time.perf_counter()
    with pytest.raises(openai.RateLimitError) as info:
        await c.chat.completions.create(
            model="gpt-4o-mini", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": PROMPT}]
        )
    assert time.perf_counter() - started < 0.5  # not retried
    err = info.value
    assert err.code == "budget_exceeded" and "key 'k'" in err.message and "monthly budget" in err.message
    assert err.response.headers["x-should-retry"] == "false" and int(err.response.headers["retry-after"]) > 0
    await c.close()
    await flush(gw)
    rt = gw.gateway.runtime
    assert rt is not None and rt.store is not None
    rows = await rt.store.spend(since=0, group_by=["key"])
    assert [(r.group["key"], r.requests, round(r.cost, 9)) for r in rows] == [
        (key_id, 4, round(3 * CALL_COST, 9))
    ]


async def test_concurrent_calls_cannot_overshoot_a_budget(gw: RunningServer) -> None:
    _, secret = await new_key(gw, budget=20 * CALL_COST)
    results = await asyncio.gather(*(chat(gw, secret) for _ in range(60)))
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 20 and statuses.count(429) == 40
    await flush(gw)
    rt = gw.gateway.runtime
    assert rt is not None and rt.store is not None
    spent = sum(r.cost for r in await rt.store.spend(since=0, group_by=[]))
    assert spent == pytest.approx(20 * CALL_COST, abs=1e-12)


async def test_without_max_tokens_the_configured_allowance_is_reserved(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, backend: dict[str, Any]
) -> None:
    gw = await gateway_factory(
        two_provider_config(
            mock_a.url, mock_b.url, prices=PRICES, limits={**backend, "default_max_tokens": 100}
        )
    )
    _, secret = await new_key(gw, budget=0.1)  # one call without max_tokens reserves 0.009 + 0.2
    status, _, body = await chat(gw, secret, max_tokens=None)
    assert status == 429 and "could cost up to $0.209000" in body["error"]["message"]
    assert (await chat(gw, secret, max_tokens=20))[0] == 200


async def test_warn_budget_and_streamed_spend(gw: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "tollway.limits")
    key_id, secret = await new_key(gw, budget=1.5 * CALL_COST, budget_action="warn", budget_period="day")
    status, headers, raw = await chat(gw, secret, stream=True)
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n") and "x-tollway-budget-warning" not in headers
    status, headers, _ = await chat(gw, secret)
    assert status == 200 and "over its daily budget" in headers["x-tollway-budget-warning"]
    assert any("budget warning: key 'k'" in r.getMessage() for r in caplog.records)
    rt = gw.gateway.runtime
    assert rt is not None and rt.limits is not None
    span = current(Period.DAY, ZoneInfo("UTC"), time.time())
    spent, reserved = await rt.limits.backend.read(f"b:key:{key_id}:{span.id}")
    assert reserved == 0 and spent == round(2 * CALL_COST * 1e9)  # the stream's cost counted too


async def test_gateway_budget_from_config_applies_when_open(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, backend: dict[str, Any]
) -> None:
    gw = await gateway_factory(
        two_provider_config(
            mock_a.url,
            mock_b.url,
            prices=PRICES,
            limits=backend,
            budgets={"gateway": [{"amount": 2 * CALL_COST, "period": "week"}], "timezone": "Europe/Paris"},
        )
    )
    assert [(await chat(gw, None))[0] for _ in range(3)] == [200, 200, 429]
    _status, _, body = await chat(gw, None)
    assert "the gateway" in body["error"]["message"] and "weekly" in body["error"]["message"]


async def test_spend_survives_a_restart(
    gateway_factory: GatewayFactory,
    mock_a: RunningMock,
    mock_b: RunningMock,
    tmp_path: Path,
    backend: dict[str, Any],
) -> None:
    cfg = two_provider_config(mock_a.url, mock_b.url, prices=PRICES, limits=backend)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = await gateway_factory(cfg, storage=storage)
    _, secret = await new_key(first, budget=3 * CALL_COST)
    assert [(await chat(first, secret))[0] for _ in range(2)] == [200, 200]
    await first.close()  # flushes the log
    if backend["backend"] == "redis":
        await drop_prefix(backend["redis_prefix"])  # and Redis forgot everything: the log is the source
    second = await gateway_factory(cfg, storage=storage)
    assert [(await chat(second, secret))[0] for _ in range(2)] == [200, 429]

"""The request log: one row per call with the right fields, estimated usage when a stream is cut,
and a graceful stop (SIGTERM) that loses no row, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import GatewayFactory, create_pg_database, drop_pg_database, two_provider_config

from tollway.mock import RunningMock
from tollway.server import RunningServer
from tollway.store import LogRow, LogStore

MSG: Any = [{"role": "user", "content": "hello there"}]


async def rows_of(gw: RunningServer) -> list[LogRow]:
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    return list(reversed(await rt.store.recent(1000)))


async def test_one_row_per_call_with_usage_and_cost(gateway: RunningServer, mock_a: RunningMock) -> None:
    await mock_a.set_fault(cached_tokens=4, reasoning_tokens=3)
    c = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    out = await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    s = await c.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    async for _ in s:
        pass
    await c.close()
    plain, streamed = await rows_of(gateway)
    assert out.usage is not None
    assert (plain.requested_model, plain.provider, plain.upstream_model, plain.status) == (
        "gpt-4o-mini",
        "mock-a",
        "gpt-4o-mini",
        200,
    )
    assert (
        plain.input_tokens == out.usage.prompt_tokens and plain.output_tokens == out.usage.completion_tokens
    )
    assert plain.cached_tokens == 4 and plain.reasoning_tokens == 3
    assert not plain.stream and plain.ttft_ms is None and plain.attempts == 1 and not plain.usage_estimated
    # gpt-4o-mini list prices: 0.15 $/M input, 0.075 cached, 0.60 output (reasoning billed as output)
    expected = ((plain.input_tokens - 4) * 0.15 + 4 * 0.075 + plain.output_tokens * 0.6) / 1e6
    assert plain.cost == pytest.approx(expected)
    assert streamed.stream and streamed.status == 200 and streamed.ttft_ms is not None
    assert 0 < streamed.ttft_ms <= streamed.latency_ms
    assert streamed.output_tokens > 0 and streamed.cost and streamed.cost > 0 and not streamed.usage_estimated
    assert plain.request_id != streamed.request_id and plain.request_body is None


async def test_failover_and_errors_are_logged(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    await mock_a.set_fault(status=503)
    async with aiohttp.ClientSession() as s:
        await (
            await s.post(
                f"{gateway.url}/v1/chat/completions",
                data=orjson.dumps({"model": "gpt-4o-mini", "messages": MSG}),
            )
        ).read()
        await (await s.post(f"{gateway.url}/v1/chat/completions", data=b"{oops")).read()
        await (
            await s.post(
                f"{gateway.url}/v1/chat/completions",
                data=orjson.dumps({"model": "unknown-x", "messages": MSG}),
            )
        ).read()
        await mock_b.set_fault(status=500)
        await (
            await s.post(
                f"{gateway.url}/v1/chat/completions", data=orjson.dumps({"model": "gpt-4o", "messages": MSG})
            )
        ).read()
    ok, bad_json, unknown, exhausted = await rows_of(gateway)
    assert (ok.status, ok.provider, ok.attempts) == (200, "mock-b", 2)
    assert (bad_json.status, bad_json.error_type) == (400, "invalid_json")
    assert (unknown.status, unknown.error_type, unknown.requested_model) == (
        404,
        "model_not_found",
        "unknown-x",
    )
    assert (exhausted.status, exhausted.error_type, exhausted.attempts) == (502, "upstreams_exhausted", 2)


async def test_cut_stream_usage_is_estimated(
    gateway: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    for mock in (mock_a, mock_b):
        await mock.set_fault(cut_after=5)
    async with aiohttp.ClientSession() as s:
        body = orjson.dumps({"model": "gpt-4o-mini", "stream": True, "messages": MSG})
        raw = await (await s.post(f"{gateway.url}/v1/chat/completions", data=body)).read()
    assert b"stream_interrupted" in raw
    await mock_a.clear_fault()
    await mock_b.clear_fault()
    for mock in (mock_a, mock_b):  # mock-a is degraded after the cut, so mock-b may answer
        await mock.set_fault(no_usage=True)
    async with aiohttp.ClientSession() as s:
        raw = await (await s.post(f"{gateway.url}/v1/chat/completions", data=body)).read()
    assert raw.endswith(b"data: [DONE]\n\n")
    cut, no_usage = await rows_of(gateway)
    assert cut.status == 502 and cut.error_type == "stream_interrupted" and cut.stream
    assert (
        cut.usage_estimated and cut.input_tokens > 0 and cut.output_tokens > 0 and cut.cost and cut.cost > 0
    )
    assert no_usage.status == 200 and no_usage.usage_estimated and no_usage.output_tokens > 0


async def test_bodies_are_logged_only_when_configured(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url, storage={"log_bodies": True}))
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)
    await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await c.close()
    (row,) = await rows_of(gw)
    assert row.request_body and "hello there" in row.request_body
    assert row.response_body and "chat.completion" in row.response_body


# -- a real process, a real signal ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, port: int, storage: str, mock_a: RunningMock, mock_b: RunningMock) -> None:
    path.write_text(f"""
[server]
port = {port}
[storage]
url = "{storage}"
flush_interval = 5.0
[[providers]]
name = "mock-a"
kind = "mock"
base_url = "{mock_a.url}/v1"
models = ["gpt-4o-mini"]
[[providers]]
name = "mock-b"
kind = "mock"
base_url = "{mock_b.url}/v1"
models = ["gpt-4o-mini"]
priority = 1
""")


async def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(400):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                async with s.get(f"{url}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.025)
    raise AssertionError("gateway did not start")


@pytest.fixture(params=["sqlite", "postgresql"])
async def stop_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stop.db'}"
        return
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


async def test_graceful_stop_loses_no_row(
    stop_storage: str, tmp_path: Path, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    storage = stop_storage
    port = free_port()
    cfg = tmp_path / "tollway.toml"
    write_config(cfg, port, storage, mock_a, mock_b)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tollway", "start", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        n = 300
        sem = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as s:

            async def one(i: int) -> int:
                async with sem:
                    body = orjson.dumps(
                        {
                            "model": "gpt-4o-mini",
                            "stream": i % 3 == 0,
                            "messages": [{"role": "user", "content": f"q{i}"}],
                        }
                    )
                    async with s.post(f"{url}/v1/chat/completions", data=body) as r:
                        await r.read()
                        return r.status

            statuses = await asyncio.gather(*(one(i) for i in range(n)))
        assert statuses == [200] * n
        # the flush interval is 5 s: without a flush on SIGTERM most rows would still be queued
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes the pipes
    store = await LogStore.open(storage)
    try:
        assert await store.count() == n
    finally:
        await store.close()


async def test_logs_and_spend_commands(gateway: RunningServer, tmp_path: Path) -> None:
    c = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    for _ in range(3):
        await c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    await c.close()
    await rows_of(gateway)
    storage = gateway.gateway.storage
    env = {**os.environ, "COLUMNS": "200"}
    logs = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tollway", "logs", "--storage", storage],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.count("gpt-4o-mini") >= 3 and "mock-a" in logs.stdout
    spend = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tollway", "spend", "--storage", storage, "--period", "today"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert spend.returncode == 0, spend.stderr
    assert "mock-a" in spend.stdout and "gpt-4o-mini" in spend.stdout

"""Calls the gateway makes on its own behalf (``internal``) take the client's path: the parent's key
and its limits, the cache, failover, pricing and the log — with the parent's request id on the row.
The semantic cache's gateway embedder is one such caller."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import openai
import pytest
from conftest import GatewayFactory, two_provider_config

from tollway.call import Call, Endpoint
from tollway.errors import ModelNotFound, RateLimited
from tollway.internal import ask
from tollway.keys.spec import KeySpec
from tollway.mock import RunningMock
from tollway.protocols.openai import OPENAI
from tollway.runtime import Runtime
from tollway.server import RunningServer
from tollway.store.row import LogRow

EMBED = "text-embedding-3-small"


def runtime(gw: RunningServer) -> Runtime:
    rt = gw.gateway.runtime
    assert rt is not None
    return rt


async def logged(rt: Runtime, n: int) -> list[LogRow]:
    deadline = time.monotonic() + 10
    while True:
        await rt.writer.flush()
        rows = await rt.store.recent(100)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def parent_of(rt: Runtime, name: str, **limits: Any) -> tuple[Call, str]:
    """A client call of a new key, as the pipeline would hold it; and the key's id."""
    key, secret = await rt.keys.repo.create(KeySpec.parse({"name": name, **limits}))
    rt.keys.apply(key)
    parent = Call(f"req_parent_{name}", OPENAI, Endpoint.CHAT, {}, "gpt-4o-mini", False)
    parent.api_key = secret
    return parent, key.id


async def test_a_sub_call_runs_as_its_parent_and_is_logged_under_it(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url, storage={"flush_interval": 0.05}))
    rt = runtime(gw)
    parent, key_id = await parent_of(rt, "workflow")
    answer = await ask(rt, parent, Endpoint.EMBEDDINGS, {"model": EMBED, "input": "hello"})
    assert isinstance(answer["data"][0]["embedding"], list)
    with pytest.raises(ModelNotFound):
        await ask(rt, parent, Endpoint.EMBEDDINGS, {"model": "no-such-model", "input": "hello"})
    rows = await logged(rt, 2)
    assert len(rows) == 2
    assert all(r.parent_request_id == parent.request_id for r in rows)
    assert {r.key_id for r in rows} == {key_id}
    ok = next(r for r in rows if r.status == 200)
    assert ok.endpoint == "embeddings" and ok.provider == "mock-a" and ok.input_tokens > 0
    assert ok.request_id != parent.request_id
    failed = next(r for r in rows if r.status != 200)
    assert (failed.status, failed.error_type) == (404, "model_not_found")


async def test_a_sub_call_counts_against_its_parents_limits(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url))
    rt = runtime(gw)
    parent, _ = await parent_of(rt, "one-a-minute", rpm=1)
    await ask(rt, parent, Endpoint.EMBEDDINGS, {"model": EMBED, "input": "first"})
    with pytest.raises(RateLimited):
        await ask(rt, parent, Endpoint.EMBEDDINGS, {"model": EMBED, "input": "second"})
    assert mock_a.stats()["requests"] + mock_b.stats()["requests"] == 1


async def test_the_gateway_embedder_asks_on_behalf_of_the_call_looked_up(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    semantic = {"temperature_policy": "cache", "semantic": {"enabled": True, "embedder": EMBED}}
    gw = await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, cache=semantic, storage={"flush_interval": 0.05})
    )
    c = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0, timeout=30)
    raw = await c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    await c.close()
    assert raw.headers["x-tollway-cache"] == "miss"
    chat_id = raw.headers["x-request-id"]
    rows = await logged(runtime(gw), 2)
    chat = [r for r in rows if r.endpoint == "chat"]
    embeddings = [r for r in rows if r.endpoint == "embeddings"]
    assert [r.request_id for r in chat] == [chat_id] and chat[0].parent_request_id is None
    assert embeddings and all(r.parent_request_id == chat_id and r.status == 200 for r in embeddings)

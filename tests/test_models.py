"""``GET /v1/models`` and ``GET /v1/models/{id}`` through both official SDKs: each gets the models in
its own format, and an unknown model is a 404 in its own envelope."""

from __future__ import annotations

import datetime as dt

import aiohttp
import anthropic
import openai
import pytest
from conftest import MODELS, GatewayFactory, two_provider_config
from openapi_schema import validate

from tollway.mock import RunningMock
from tollway.server import RunningServer


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(
        two_provider_config(mock_a.url, mock_b.url, aliases={"fast": ["mock-b/gpt-4o-mini"]})
    )


async def test_openai_sdk_lists_and_retrieves(gw: RunningServer) -> None:
    client = openai.AsyncOpenAI(
        base_url=f"{gw.url}/v1", api_key="x", max_retries=0, _strict_response_validation=True
    )
    assert sorted([m.id async for m in client.models.list()]) == sorted([*MODELS, "fast"])
    model = await client.models.retrieve("gpt-4o")
    assert model.id == "gpt-4o" and model.object == "model" and model.owned_by == "tollway"
    assert (await client.models.retrieve("fast")).id == "fast"  # an alias
    assert (
        await client.models.retrieve("mock-a/some-new-model")
    ).id == "mock-a/some-new-model"  # provider/model
    with pytest.raises(openai.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nowhere/gpt-4o")  # not a configured provider
    await client.close()
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw.url}/v1/models/gpt-4o-mini") as r:
            validate("Model", await r.json())
        async with s.post(f"{gw.url}/v1/models/gpt-4o-mini") as r:
            assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"
        async with s.get(f"{gw.url}/models/gpt-4o-mini") as r:  # a base URL without /v1
            assert r.status == 200 and (await r.json())["id"] == "gpt-4o-mini"


async def test_anthropic_sdk_gets_anthropics_format(gw: RunningServer) -> None:
    client = anthropic.AsyncAnthropic(
        base_url=gw.url, api_key="x", max_retries=0, _strict_response_validation=True
    )
    listed = [m async for m in client.models.list()]
    assert sorted(m.id for m in listed) == sorted([*MODELS, "fast"])
    assert all(m.type == "model" and m.display_name == m.id and m.lifecycle == "active" for m in listed)
    assert all(isinstance(m.created_at, dt.datetime) and m.created_at.tzinfo is not None for m in listed)
    model = await client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini" and model.type == "model"
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.models.retrieve("no-such-model")
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    await client.close()

"""Cache hits and shared calls for Anthropic clients (``/v1/messages``, the official anthropic SDK), with
an OpenAI-format and an Anthropic-format upstream: body ⇄ stream hits, deduplication, tool use."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from conftest import GatewayFactory

from tollway.config import parse_config
from tollway.mock import RunningMock
from tollway.server import RunningServer

ASK: Any = [{"role": "user", "content": "Say hi"}]


def config(kind: str, mock: RunningMock) -> Any:
    return parse_config(
        {
            "providers": [
                {
                    "name": f"up-{kind}",
                    "kind": kind,
                    "base_url": f"{mock.url}/v1",
                    "api_key": "sk-upstream-key-1234",
                    "models": ["m"],
                }
            ],
            "cache": {"temperature_policy": "cache"},
        }
    )


def client(gw: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)


def text(message: Any) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


async def create(c: anthropic.AsyncAnthropic, **kw: Any) -> tuple[str, Any]:
    raw = await c.messages.with_raw_response.create(model="m", max_tokens=200, system="be brief", **kw)
    return raw.headers.get("x-tollway-cache", ""), await raw.parse()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_body_and_stream_hits(kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock) -> None:
    gw = await gateway_factory(config(kind, mock_a))
    c = client(gw)
    status, first = await create(c, messages=ASK)
    assert status == "miss" and first.stop_reason == "end_turn"
    status, second = await create(c, messages=ASK)
    assert status == "hit" and text(second) == text(first) and second.stop_reason == "end_turn"
    assert second.usage.output_tokens == first.usage.output_tokens
    async with c.messages.stream(model="m", max_tokens=200, system="be brief", messages=ASK) as s:
        final = await s.get_final_message()
    assert text(final) == text(first) and final.stop_reason == "end_turn"
    # a stream fills the cache for a body
    other: Any = [{"role": "user", "content": "Say bye"}]
    async with c.messages.stream(model="m", max_tokens=200, system="be brief", messages=other) as s:
        streamed = await s.get_final_message()
    status, body = await create(c, messages=other)
    assert status == "hit" and text(body) == text(streamed)
    assert mock_a.stats()["requests"] == 2
    # an OpenAI client asking the same is another protocol: its own entry
    await c.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_shared_calls_and_tool_use(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(config(kind, mock_a))
    await mock_a.set_fault(latency_ms=300)
    c = client(gw)

    async def one(i: int) -> str:
        if i % 2:
            return text((await create(c, messages=ASK))[1])
        async with c.messages.stream(model="m", max_tokens=200, system="be brief", messages=ASK) as s:
            return text(await s.get_final_message())

    answers = await asyncio.gather(*(one(i) for i in range(20)))
    assert len(set(answers)) == 1 and answers[0]
    assert mock_a.stats()["requests"] == 1
    await mock_a.clear_fault()
    tools: Any = [
        {
            "name": "get_weather",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    for _ in range(2):  # a tool use waits for its result: never cached
        status, msg = await create(
            c,
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=tools,
            tool_choice={"type": "any"},
        )
        assert msg.stop_reason == "tool_use" and status == "miss"
    assert mock_a.stats()["requests"] == 3
    await c.close()


async def test_cache_control_from_anthropic_clients(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(config("openai", mock_a))
    c = client(gw)
    assert (await create(c, messages=ASK, extra_headers={"Cache-Control": "no-store"}))[0] == "bypass"
    assert (await create(c, messages=ASK))[0] == "miss"
    assert (await create(c, messages=ASK, extra_headers={"Cache-Control": "no-cache"}))[0] == "bypass"
    assert (await create(c, messages=ASK))[0] == "hit"
    assert mock_a.stats()["requests"] == 3
    await c.close()

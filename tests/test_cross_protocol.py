"""Failover across vendors: the official openai and anthropic SDKs through the gateway to OpenAI,
Anthropic and Gemini fake upstreams, streams included, with errors in each client's protocol."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from conftest import GatewayFactory
from openapi_schema import validate

from tollway.config import Config, parse_config
from tollway.mock import RunningMock
from tollway.server import RunningServer

KINDS = ("openai", "anthropic", "gemini")
TOOLS: Any = [
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
A_TOOLS: Any = [
    {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def one_provider(kind: str, mock: RunningMock, model: str = "m") -> Config:
    base = f"{mock.url}/v1beta" if kind == "gemini" else f"{mock.url}/v1"
    return parse_config(
        {
            "providers": [
                {
                    "name": f"up-{kind}",
                    "kind": kind,
                    "base_url": base,
                    "api_key": "sk-upstream-key-1234",
                    "models": [model],
                }
            ]
        }
    )


def oa(gw: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)


def an(gw: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)


@pytest.mark.parametrize("kind", KINDS)
async def test_openai_client_any_upstream(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    c = oa(gw)
    raw = await c.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hi"}]
    )
    whole = raw.parse()
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    assert whole.choices[0].message.content and whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    assert raw.headers["x-tollway-provider"] == f"up-{kind}"
    async with c.chat.completions.stream(
        model="m", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hi"}]
    ) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.content == whole.choices[0].message.content
    chunks = [
        ch
        async for ch in await c.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    for ch in chunks:
        validate("CreateChatCompletionStreamResponse", ch.model_dump(exclude_unset=True))
    await c.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_openai_client_tools_any_upstream(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    c = oa(gw)
    msgs: Any = [{"role": "user", "content": "weather in Paris?"}]
    out = await c.chat.completions.create(model="m", messages=msgs, tools=TOOLS)
    calls = out.choices[0].message.tool_calls or []
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments) == {"city": "mock"}
    assert out.choices[0].finish_reason == "tool_calls"
    async with c.chat.completions.stream(model="m", messages=msgs, tools=TOOLS) as s:
        final = await s.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [(tc.function.name, json.loads(tc.function.arguments)) for tc in streamed] == [
        ("get_weather", {"city": "mock"})
    ]
    # parallel calls keep separate indices
    async with c.chat.completions.stream(
        model="m", tools=TOOLS, messages=[{"role": "user", "content": "two [[mock:parallel_tools]]"}]
    ) as s:
        final = await s.get_final_completion()
    assert len(final.choices[0].message.tool_calls or []) == 2
    # the tool loop finishes: tool result goes back, a text answer comes out
    follow: Any = [
        *msgs,
        out.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    done = await c.chat.completions.create(model="m", messages=follow, tools=TOOLS)
    assert done.choices[0].message.content and done.choices[0].finish_reason == "stop"
    await c.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_anthropic_client_any_upstream(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    c = an(gw)
    msg = await c.messages.create(
        model="m", max_tokens=200, system="be brief", messages=[{"role": "user", "content": "Say hi"}]
    )
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert text and msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    async with c.messages.stream(
        model="m", max_tokens=200, system="be brief", messages=[{"role": "user", "content": "Say hi"}]
    ) as s:
        final = await s.get_final_message()
    assert "".join(b.text for b in final.content if b.type == "text") == text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    # sync client too
    sync = anthropic.Anthropic(base_url=gw.url, api_key="k", max_retries=0)
    import asyncio

    again = await asyncio.to_thread(
        sync.messages.create,
        model="m",
        max_tokens=200,
        system="be brief",
        messages=[{"role": "user", "content": "Say hi"}],
    )
    assert "".join(b.text for b in again.content if b.type == "text") == text
    sync.close()
    await c.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_anthropic_client_tools_any_upstream(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    c = an(gw)
    msgs: Any = [{"role": "user", "content": "weather in Paris?"}]
    msg = await c.messages.create(model="m", max_tokens=300, tools=A_TOOLS, messages=msgs)
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "mock"})]
    assert msg.stop_reason == "tool_use"
    async with c.messages.stream(model="m", max_tokens=300, tools=A_TOOLS, messages=msgs) as s:
        final = await s.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", {"city": "mock"})
    ]
    follow: Any = [
        *msgs,
        {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}]},
    ]
    done = await c.messages.create(model="m", max_tokens=300, tools=A_TOOLS, messages=follow)
    assert done.stop_reason == "end_turn" and any(b.type == "text" for b in done.content)
    await c.close()


async def test_anthropic_passthrough_keeps_native_fields(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider("anthropic", mock_a))
    body = {
        "model": "m",
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "think"}],
    }
    async with aiohttp.ClientSession() as s, s.post(f"{gw.url}/v1/messages", json=body) as r:
        msg = await r.json()
    thinking = [b for b in msg["content"] if b["type"] == "thinking"]
    assert thinking and thinking[0]["signature"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/messages", json={**body, "stream": True}) as r,
    ):
        raw = await r.read()
    blocks = raw.split(b"\n\n")
    assert all(b.startswith(b"event: ") for b in blocks if b.strip())
    assert b"signature_delta" in raw and raw.count(b"event: message_start") == 1


async def test_failover_crosses_vendors(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    cfg = parse_config(
        {
            "providers": [
                {"name": "openai", "kind": "openai", "base_url": f"{mock_a.url}/v1", "models": ["smart"]},
                {
                    "name": "claude",
                    "kind": "anthropic",
                    "base_url": f"{mock_b.url}/v1",
                    "models": {"smart": "claude-x"},
                    "priority": 1,
                },
            ]
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(status=503)
    c = oa(gw)
    raw = await c.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-tollway-provider"] == "claude" and raw.headers["x-tollway-attempts"] == "2"
    assert raw.parse().choices[0].message.content
    s = await c.chat.completions.create(
        model="smart", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join([ch.choices[0].delta.content or "" async for ch in s if ch.choices])
    assert s.response.headers["x-tollway-provider"] == "claude"
    await c.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_mid_stream_errors_in_the_clients_protocol(
    kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    await mock_a.set_fault(cut_after=3)
    c = oa(gw)
    s = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError):
        async for _ in s:
            pass
    await c.close()
    a = an(gw)
    with pytest.raises(anthropic.APIStatusError) as info:
        async with a.messages.stream(
            model="m", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        ) as st:
            await st.get_final_message()
    assert "stream" in str(info.value)
    body = {"model": "m", "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as sess, sess.post(f"{gw.url}/v1/messages", json=body) as r:
        raw = await r.read()
    last = raw.strip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error\ndata: ")
    assert orjson.loads(last.split(b"data: ", 1)[1])["type"] == "error"
    assert b"message_stop" not in raw


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 529])
async def test_anthropic_error_envelope(
    status: int, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider("anthropic", mock_a))
    await mock_a.set_fault(status=status)
    request = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as s, s.post(f"{gw.url}/v1/messages", json=request) as r:
        body = await r.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert "sk-upstream-key" not in json.dumps(body)


async def test_anthropic_ingress_validation_and_auth_headers(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    gw = await gateway_factory(one_provider("openai", mock_a))
    async with aiohttp.ClientSession() as s:
        for payload, param in (
            (b"{bad", None),
            (b'{"model":"m","messages":[{"role":"user","content":"x"}]}', "max_tokens"),
            (b'{"model":"m","max_tokens":5}', "messages"),
        ):
            async with s.post(f"{gw.url}/v1/messages", data=payload) as r:
                body = await r.json()
                assert r.status == 400 and body["type"] == "error"
                assert body["error"]["type"] == "invalid_request_error"
                if param:
                    assert param in body["error"]["message"]
        async with s.post(
            f"{gw.url}/v1/messages",
            json={"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        ) as r:
            assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    c = an(gw)
    with pytest.raises(anthropic.NotFoundError):
        await c.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    await c.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_count_tokens(kind: str, gateway_factory: GatewayFactory, mock_a: RunningMock) -> None:
    gw = await gateway_factory(one_provider(kind, mock_a))
    c = an(gw)
    counted = await c.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hello " * 40}])
    assert counted.input_tokens > 40
    await c.close()


async def test_cost_of_translated_usage(gateway_factory: GatewayFactory, mock_a: RunningMock) -> None:
    """Anthropic's input_tokens excludes cache reads: tollway adds them back and prices them as cached."""
    cfg = parse_config(
        {
            "providers": [
                {
                    "name": "claude",
                    "kind": "anthropic",
                    "base_url": f"{mock_a.url}/v1",
                    "models": {"m": "claude-haiku-4-5"},
                }
            ]
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(cached_tokens=6)
    c = oa(gw)
    out = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hello there friend"}]
    )
    assert out.usage is not None and out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 6
    await c.close()
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    (row,) = await rt.store.recent(1)
    assert row.cached_tokens == 6 and row.input_tokens == out.usage.prompt_tokens
    # claude-haiku-4-5: $1/M input, $0.10/M cache read, $5/M output
    expected = ((row.input_tokens - 6) * 1.0 + 6 * 0.1 + row.output_tokens * 5.0) / 1e6
    assert row.cost == pytest.approx(expected)


async def test_gemini_thoughts_are_output_and_reasoning(
    gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    """Gemini reports thoughts outside candidatesTokenCount: they must be billed as output."""
    cfg = parse_config(
        {
            "providers": [
                {
                    "name": "gem",
                    "kind": "gemini",
                    "base_url": f"{mock_a.url}/v1beta",
                    "models": {"m": "gemini-2.5-flash"},
                }
            ]
        }
    )
    gw = await gateway_factory(cfg)
    await mock_a.set_fault(reasoning_tokens=30, cached_tokens=4)
    c = oa(gw)
    out = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "think hard please"}]
    )
    await c.close()
    assert out.usage is not None and out.usage.completion_tokens_details is not None
    assert out.usage.completion_tokens_details.reasoning_tokens == 30
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    (row,) = await rt.store.recent(1)
    assert row.reasoning_tokens == 30 and row.output_tokens == out.usage.completion_tokens >= 30
    assert row.cached_tokens == 4
    # gemini-2.5-flash: $0.30/M input, $0.03/M cached, $2.50/M output (thoughts billed as output)
    expected = ((row.input_tokens - 4) * 0.30 + 4 * 0.03 + row.output_tokens * 2.5) / 1e6
    assert row.cost == pytest.approx(expected)


async def test_openai_embeddings_served_by_gemini(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    """The OpenAI SDK (base64 by default, floats on request) against a Gemini deployment: the same
    vectors the mock computes, in order, with estimated usage; token-id input cannot be said in
    Gemini's API, so it fails over to the OpenAI deployment behind it."""
    from tollway.mock import content

    gw = await gateway_factory(
        parse_config(
            {
                "providers": [
                    {
                        "name": "up-gemini",
                        "kind": "gemini",
                        "base_url": f"{mock_a.url}/v1beta",
                        "api_key": "g",
                        "models": {"emb": "text-embedding-004"},
                        "priority": 0,
                    },
                    {
                        "name": "up-openai",
                        "kind": "openai",
                        "base_url": f"{mock_b.url}/v1",
                        "api_key": "o",
                        "models": {"emb": "text-embedding-3-small"},
                        "priority": 1,
                    },
                ]
            }
        )
    )
    # not the strict client: it validates before decoding base64 (see test_embeddings_float_and_base64)
    client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)
    raw = await client.embeddings.with_raw_response.create(model="emb", input=["alpha", "beta"], dimensions=8)
    assert raw.headers["x-tollway-provider"] == "up-gemini"
    got = raw.parse()
    assert [d.index for d in got.data] == [0, 1]
    for d, text in zip(got.data, ["alpha", "beta"], strict=True):  # base64 on the wire, decoded by the SDK
        assert d.embedding == pytest.approx(list(content.embedding(text, 8)), rel=1e-6)
    assert got.usage.prompt_tokens == got.usage.total_tokens == 3  # estimated: ceil(5/4) + ceil(4/4)
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{gw.url}/v1/embeddings", json={"model": "emb", "input": "alpha", "encoding_format": "float"}
        ) as r,
    ):
        floats = await r.json()
    validate("CreateEmbeddingResponse", floats)
    assert floats["data"][0]["embedding"] == list(content.embedding("alpha", 768))
    tokens = await client.embeddings.with_raw_response.create(model="emb", input=[[1, 2, 3]])
    assert tokens.headers["x-tollway-provider"] == "up-openai" and tokens.headers["x-tollway-attempts"] == "2"
    await client.close()
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    rows = await rt.store.recent(10)
    gemini_rows = [r for r in rows if r.provider == "up-gemini" and r.status == 200]
    assert len(gemini_rows) == 2 and all(
        r.usage_estimated and r.endpoint == "embeddings" for r in gemini_rows
    )

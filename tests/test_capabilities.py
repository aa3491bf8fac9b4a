"""The capability matrix: for every provider kind and every capability in ``providers/registry.py``,
a declared capability works end to end (official SDKs → gateway → the fake provider speaking that
kind's wire format), and one not declared is refused in the client's format without asking the
upstream — never a 500 from deep inside a provider."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, get_args

import aiohttp
import anthropic
import openai
import pytest
from conftest import GatewayFactory

from tollway.config import Config, parse_config
from tollway.mock import RunningMock
from tollway.providers.registry import CAPABILITY_NAMES, FACTS, Capabilities, ProviderKind
from tollway.routing import Router
from tollway.server import RunningServer, make_upstream

KINDS = sorted(FACTS)
# a 1×1 PNG, as a data URL: what a vision request sends
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()
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


def config(kind: str, mock: RunningMock) -> Config:
    base = f"{mock.url}/v1beta" if kind == "gemini" else f"{mock.url}/v1"
    return parse_config(
        {
            "providers": [
                {
                    "name": f"up-{kind}",
                    "kind": kind,
                    "base_url": base,
                    "api_key": "sk-up-1234",
                    "models": ["m"],
                }
            ]
        }
    )


def oa(gw: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0)


def an(gw: RunningServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key="k", max_retries=0)


# --- what "works" means, per capability ------------------------------------------------------------


async def streams(gw: RunningServer, mock: RunningMock) -> None:
    async with oa(gw) as c:
        chunks = [ch async for ch in await c.chat.completions.create(model="m", messages=USER, stream=True)]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    async with an(gw) as a, a.messages.stream(model="m", max_tokens=50, messages=USER) as s:
        message = await s.get_final_message()
    assert message.content and message.stop_reason == "end_turn"


async def calls_tools(gw: RunningServer, mock: RunningMock) -> None:
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with oa(gw) as c:
        reply = await c.chat.completions.create(model="m", messages=ask, tools=TOOLS, tool_choice="required")  # type: ignore[arg-type]
    calls = reply.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]


async def sees_images(gw: RunningServer, mock: RunningMock) -> None:
    image: Any = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
    ]
    async with oa(gw) as c:
        reply = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": image}])
    assert reply.choices[0].message.content
    async with an(gw) as a:
        message = await a.messages.create(
            model="m",
            max_tokens=50,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this picture?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                        },
                    ],
                }
            ],
        )
    assert message.content


async def embeds(gw: RunningServer, mock: RunningMock) -> None:
    async with oa(gw) as c:
        answer = await c.embeddings.create(model="m", input=["one", "two"])
    assert len(answer.data) == 2 and answer.data[0].embedding


async def counts_tokens(gw: RunningServer, mock: RunningMock) -> None:
    async with an(gw) as a:
        counted = await a.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": "hello " * 40}]
        )
    assert counted.input_tokens > 40
    counted_by = {"/v1/messages/count_tokens", "/v1beta/models/m:countTokens"}  # Anthropic, Gemini
    assert sum(mock.state.stats.by_path[path] for path in counted_by) == 1  # asked of the upstream


async def answers_responses(gw: RunningServer, mock: RunningMock) -> None:
    raise AssertionError("no kind declares the Responses API yet: teach this test what it means")


USER: Any = [{"role": "user", "content": "Say hi"}]
WORKS: dict[str, Callable[[RunningServer, RunningMock], Awaitable[None]]] = {
    "streaming": streams,
    "tools": calls_tools,
    "vision": sees_images,
    "embeddings": embeds,
    "token_counting": counts_tokens,
    "responses": answers_responses,
}


# --- what "refused clearly" means, per capability --------------------------------------------------


async def refuses_embeddings(gw: RunningServer, mock: RunningMock) -> None:
    async with oa(gw) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.embeddings.create(model="m", input="one")
    error: Any = caught.value.body
    assert error["code"] == "unsupported_capability" and error["param"] == "model"
    assert "cannot serve embeddings" in error["message"]
    assert mock.state.stats.requests == 0  # the upstream was never asked


async def estimates_tokens(gw: RunningServer, mock: RunningMock) -> None:
    """Not refused: count_tokens answers from tollway's own estimate when no deployment can count."""
    async with an(gw) as a:
        counted = await a.messages.count_tokens(
            model="m", messages=[{"role": "user", "content": "hello " * 40}]
        )
    assert counted.input_tokens > 40
    assert mock.state.stats.requests == 0


async def has_no_responses_route(gw: RunningServer, mock: RunningMock) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/responses", json={"model": "m", "input": "hi"}) as r,
    ):
        body = await r.json()
    assert r.status == 404 and body["error"]["type"] == "invalid_request_error"
    assert mock.state.stats.requests == 0


REFUSED: dict[str, Callable[[RunningServer, RunningMock], Awaitable[None]]] = {
    "embeddings": refuses_embeddings,
    "token_counting": estimates_tokens,
    "responses": has_no_responses_route,
}
# The router checks only what a call's endpoint needs, once per model (no per-request look into the
# body): a kind that cannot carry streams, tools or images would need a refusal written first.
EVERY_KIND = frozenset(CAPABILITY_NAMES) - REFUSED.keys()


def test_the_table_names_every_kind_and_capability() -> None:
    assert set(FACTS) == set(get_args(ProviderKind))
    assert set(WORKS) == set(CAPABILITY_NAMES)
    assert all(facts.kind == kind for kind, facts in FACTS.items())
    for facts in FACTS.values():
        assert set(facts.capabilities.names()) >= EVERY_KIND, facts.kind


@pytest.mark.parametrize("capability", CAPABILITY_NAMES)
@pytest.mark.parametrize("kind", KINDS)
async def test_capability(
    kind: str, capability: str, gateway_factory: GatewayFactory, mock_a: RunningMock
) -> None:
    declared = getattr(FACTS[kind].capabilities, capability)
    gw = await gateway_factory(config(kind, mock_a))
    await (WORKS if declared else REFUSED)[capability](gw, mock_a)


def test_upstream_class_comes_from_the_table() -> None:
    cfg = parse_config({"providers": [{"name": k, "kind": k, "models": ["m"]} for k in KINDS]})
    for provider in cfg.providers:
        assert type(make_upstream(provider)).__name__ == FACTS[provider.kind].upstream.rpartition(":")[2]


async def test_the_router_skips_deployments_that_cannot_serve_the_endpoint(mock_a: RunningMock) -> None:
    """An Anthropic primary with an OpenAI fallback: chat reaches both, embeddings only the fallback,
    and an explicit pair naming the Anthropic provider is refused without a deployment made for it."""
    from tollway.call import Endpoint
    from tollway.errors import UnsupportedCapability

    cfg = parse_config(
        {
            "providers": [
                {"name": "claude", "kind": "anthropic", "base_url": f"{mock_a.url}/v1", "models": ["m"]},
                {
                    "name": "gpt",
                    "kind": "openai",
                    "base_url": f"{mock_a.url}/v1",
                    "models": ["m"],
                    "priority": 1,
                },
            ]
        }
    )
    router = Router(cfg, make_upstream)
    assert [d.provider.name for d in router.candidates("m")] == ["claude", "gpt"]
    assert [d.provider.name for d in router.candidates("m", Endpoint.EMBEDDINGS)] == ["gpt"]
    assert [d.provider.name for d in router.candidates("m", Endpoint.COUNT_TOKENS)] == ["claude"]
    assert [d.provider.name for d in router.candidates("gpt/x", Endpoint.EMBEDDINGS)] == ["gpt"]
    made = len(router.deployments())
    with pytest.raises(UnsupportedCapability):
        router.candidates("claude/x", Endpoint.EMBEDDINGS)
    assert len(router.deployments()) == made
    for upstream in router.upstreams():
        await upstream.close()


def test_capabilities_default_to_what_every_kind_does() -> None:
    assert Capabilities().names() == ["streaming", "tools", "vision"]


def test_the_documented_table_is_the_declared_one() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for kind, facts in FACTS.items():
        cells = " | ".join("yes" if getattr(facts.capabilities, c) else "—" for c in CAPABILITY_NAMES)
        assert f"| `{kind}` | {cells} |" in docs, kind
    assert "| kind | " + " | ".join(c.replace("_", " ") for c in CAPABILITY_NAMES) + " |" in docs

"""The OpenAI-compatible endpoints through the gateway, with the official openai SDK as the client."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openapi_schema import validate

from tollway.mock import RunningMock
from tollway.server import RunningServer

pytestmark = pytest.mark.asyncio


def sdk(gateway: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0, _strict_response_validation=True
    )


async def raw_post(
    gateway: RunningServer,
    path: str,
    body: bytes | io.BytesIO,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method,
            f"{gateway.url}{path}",
            data=body,
            headers={"content-type": "application/json", **(headers or {})},
        ) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def test_chat_non_stream_async_matches_schema(gateway: RunningServer) -> None:
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    validate("CreateChatCompletionResponse", json.loads(raw.content))
    assert raw.headers["x-tollway-provider"] == "mock-a"
    assert raw.headers["x-tollway-model"] == "gpt-4o-mini"
    assert raw.headers["x-tollway-attempts"] == "1"
    assert raw.headers["x-request-id"].startswith("req_")
    await client.close()


async def test_chat_sync_client(gateway: RunningServer) -> None:
    def call() -> str:
        client = openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key="k", max_retries=0, _strict_response_validation=True
        )
        out = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
        client.close()
        return out.choices[0].message.content or ""

    assert await asyncio.to_thread(call)


async def test_parameters_pass_through_untouched(gateway: RunningServer, mock_a: RunningMock) -> None:
    client = sdk(gateway)
    out = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_object"},
        temperature=0.2,
        seed=7,
        max_tokens=50,
    )
    assert isinstance(json.loads(out.choices[0].message.content or ""), dict)
    await client.close()


async def test_stream_hides_usage_unless_asked(gateway: RunningServer) -> None:
    client = sdk(gateway)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
    ]
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "the usage-only chunk must be hidden"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
    for c in chunks:
        validate("CreateChatCompletionStreamResponse", c.model_dump(exclude_unset=True))

    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert chunks[-1].choices == []
    await client.close()


async def test_stream_equals_non_stream_answer(gateway: RunningServer) -> None:
    client = sdk(gateway)
    messages: Any = [{"role": "user", "content": "the same question"}]
    whole = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    async with client.chat.completions.stream(model="gpt-4o-mini", messages=messages) as s:
        final = await s.get_final_completion()
    assert final.choices[0].message.content == whole.choices[0].message.content
    await client.close()


async def test_stream_is_relayed_raw_sse(gateway: RunningServer) -> None:
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    status, headers, raw = await raw_post(gateway, "/v1/chat/completions", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert all(e.startswith(b"data: ") for e in events)


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
    },
]


async def test_tools_non_stream_and_stream(gateway: RunningServer) -> None:
    client = sdk(gateway)
    messages: Any = [{"role": "user", "content": "weather in Paris?"}]
    out = await client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=TOOLS, tool_choice="required"
    )
    call = out.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "mock"}
    assert out.choices[0].finish_reason == "tool_calls"
    async with client.chat.completions.stream(model="gpt-4o-mini", messages=messages, tools=TOOLS) as s:
        final = await s.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert streamed.function.name == "get_weather"
    assert json.loads(streamed.function.arguments) == {"city": "mock"}
    await client.close()


async def test_missing_tool_call_index_is_repaired(gateway: RunningServer, mock_a: RunningMock) -> None:
    await mock_a.set_fault(omit_tool_call_index=True)
    client = sdk(gateway)
    async with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "two calls [[mock:parallel_tools]]"}],
        tools=TOOLS,
    ) as s:
        final = await s.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert len(calls) == 2
    assert all(json.loads(c.function.arguments) == {"city": "mock"} for c in calls)
    await client.close()


async def test_embeddings_float_and_base64(gateway: RunningServer) -> None:
    # Not the strict client: the SDK's strict mode validates before decoding base64, so it rejects
    # real OpenAI base64 answers too. The raw body is checked against the OpenAPI schema below.
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    default = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"]
    )  # SDK asks for base64
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert len(default.data) == 2
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)
    body = orjson.dumps({"model": "text-embedding-3-small", "input": "a", "encoding_format": "base64"})
    status, _, raw = await raw_post(gateway, "/v1/embeddings", body)
    assert status == 200
    parsed = orjson.loads(raw)
    # the OpenAPI schema only knows float arrays; OpenAI itself answers base64 with a string
    validate(
        "CreateEmbeddingResponse", {**parsed, "data": [{**d, "embedding": [0.0]} for d in parsed["data"]]}
    )
    status, _, raw = await raw_post(gateway, "/v1/embeddings", body.replace(b"base64", b"float"))
    assert status == 200
    validate("CreateEmbeddingResponse", orjson.loads(raw))
    vec = base64.b64decode(parsed["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(vec) // 4}f", vec)) == pytest.approx(floats.data[0].embedding, rel=1e-6)
    await client.close()


async def test_models_lists_what_the_gateway_serves(gateway: RunningServer) -> None:
    client = sdk(gateway)
    ids = {m.id async for m in client.models.list()}
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small"} <= ids
    status, _, raw = await raw_post(gateway, "/v1/models", b"", method="GET")
    assert status == 200
    validate("ListModelsResponse", orjson.loads(raw))
    await client.close()


async def test_health(gateway: RunningServer) -> None:
    status, _, raw = await raw_post(gateway, "/health", b"", method="GET")
    assert status == 200
    data = orjson.loads(raw)
    assert data["status"] == "ok" and data["deployments"]["healthy"] >= 2


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/chat/completions", b"{not json", 400, None),
        ("/v1/chat/completions", b"[1,2]", 400, None),
        ("/v1/chat/completions", b"", 400, None),
        ("/v1/chat/completions", b'{"messages":[{"role":"user","content":"x"}]}', 400, "model"),
        ("/v1/chat/completions", b'{"model":"gpt-4o-mini"}', 400, "messages"),
        ("/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":"hi"}', 400, "messages"),
        ("/v1/chat/completions", b'{"model":7,"messages":[{"role":"user","content":"x"}]}', 400, "model"),
        (
            "/v1/chat/completions",
            b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"stream":"yes"}',
            400,
            "stream",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"max_tokens":"5"}',
            400,
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"no-such-model","messages":[{"role":"user","content":"x"}]}',
            404,
            "model",
        ),
        ("/v1/embeddings", b'{"model":"text-embedding-3-small"}', 400, "input"),
        (
            "/v1/embeddings",
            b'{"model":"text-embedding-3-small","input":"x","encoding_format":"hex"}',
            400,
            "encoding_format",
        ),
        ("/v1/nothing-here", b"{}", 404, None),
    ],
)
async def test_bad_input_gets_openai_error_envelope(
    gateway: RunningServer, path: str, body: bytes, status: int, param: str | None
) -> None:
    got, _, raw = await raw_post(gateway, path, body)
    assert got == status
    err = orjson.loads(raw)
    validate("ErrorResponse", err)
    assert set(err["error"]) == {"message", "type", "param", "code"}
    assert err["error"]["param"] == param
    assert err["error"]["message"]
    # the gateway keeps serving
    ok, _, _ = await raw_post(gateway, "/health", b"", method="GET")
    assert ok == 200


async def test_wrong_method_and_huge_body(gateway: RunningServer) -> None:
    status, _, raw = await raw_post(gateway, "/v1/chat/completions", b"", method="GET")
    assert status == 405 and orjson.loads(raw)["error"]["code"] == "method_not_allowed"
    huge = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x" * (11 * 1024 * 1024) + b'"}]}'
    )
    # a file-like body: aiohttp warns that sending more than 1 MB of bytes at once blocks its loop
    status, _, raw = await raw_post(gateway, "/v1/chat/completions", io.BytesIO(huge))
    assert status == 413
    validate("ErrorResponse", orjson.loads(raw))


async def test_sdk_raises_typed_errors(gateway: RunningServer) -> None:
    client = sdk(gateway)
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    await client.close()


async def test_base_url_without_v1_prefix(gateway: RunningServer) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url, api_key="k", max_retries=0)
    out = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert out.choices[0].message.content
    await client.close()


async def test_provider_key_sent_upstream_and_never_leaked(gateway_factory: Any) -> None:
    from tollway.config import parse_config
    from tollway.mock import MockOptions, start_mock

    secret = "sk-test-SECRET-provider-key-123456"
    async with (
        await start_mock(options=MockOptions(api_key=secret)) as good,
        await start_mock(options=MockOptions(api_key="sk-other-key-000000")) as bad,
    ):
        cfg = parse_config(
            {
                "providers": [
                    {
                        "name": "good",
                        "kind": "mock",
                        "base_url": f"{good.url}/v1",
                        "api_key": secret,
                        "models": ["m1"],
                    },
                    {
                        "name": "bad",
                        "kind": "mock",
                        "base_url": f"{bad.url}/v1",
                        "api_key": secret,
                        "models": ["m2"],
                    },
                ]
            }
        )
        gw = await gateway_factory(cfg)
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="client", max_retries=0)
        out = await client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
        assert out.choices[0].message.content
        # the wrong key upstream is the gateway's problem, not the client's: 502, without the key in it
        status, headers, raw = await raw_post(
            gw, "/v1/chat/completions", b'{"model":"m2","messages":[{"role":"user","content":"x"}]}'
        )
        assert status == 502
        assert "(HTTP 401)" in orjson.loads(raw)["error"]["message"]
        assert secret.encode() not in raw and "SECRET" not in json.dumps(headers)
        await client.close()


async def test_the_clients_bytes_go_upstream_as_sent_unless_the_model_is_renamed(
    gateway_factory: Any,
) -> None:
    """Same model name upstream: the client's body is forwarded byte for byte (spacing, key order,
    escapes and all). An alias or a renamed upstream model: the same JSON with the upstream's name."""
    from aiohttp import web

    from tollway.config import parse_config

    received: list[bytes] = []
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }

    async def chat(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        gw = await gateway_factory(
            parse_config(
                {
                    "providers": [
                        {
                            "name": "rec",
                            "kind": "openai",
                            "base_url": f"http://127.0.0.1:{port}/v1",
                            "api_key": "k",
                            "models": {"same-name": "same-name", "public-name": "upstream-name"},
                        }
                    ]
                }
            )
        )
        body = (
            b'{ "messages": [{"role": "user", "content": "caf\\u00e9"}],  "model": "same-name", "seed": 7 }'
        )
        status, _, _ = await raw_post(gw, "/v1/chat/completions", body)
        assert status == 200
        assert received[-1] == body

        status, _, _ = await raw_post(gw, "/v1/chat/completions", body.replace(b"same-name", b"public-name"))
        assert status == 200
        assert received[-1] != body.replace(b"same-name", b"public-name")
        assert orjson.loads(received[-1]) == {
            "messages": [{"role": "user", "content": "café"}],
            "model": "upstream-name",
            "seed": 7,
        }
    finally:
        await runner.cleanup()

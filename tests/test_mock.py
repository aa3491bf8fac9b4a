"""The built-in fake providers, driven over real sockets by the official openai SDK and raw HTTP.

Bodies are checked against OpenAI's OpenAPI schemas; every fault kind, quirk and directive is
exercised once.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tollway.mock import Fault, MockOptions, RunningMock, content, start_mock

try:
    from .openapi_schema import validate
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from openapi_schema import validate

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "scale": {"type": "number"},
                "alerts": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "extra": {"type": "object"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
WEATHER_ARGS = {
    "city": "mock", "days": 1, "scale": 1.5, "alerts": True, "tags": [], "extra": {}, "unit": "celsius",
}  # fmt: skip
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def mock() -> AsyncIterator[RunningMock]:
    async with await start_mock(options=MockOptions(models=MODELS)) as running:
        yield running


@pytest.fixture
async def client(mock: RunningMock) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0, timeout=5)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, mock: RunningMock, path: str, body: object) -> tuple[int, Any]:
    async with http.post(f"{mock.url}{path}", json=body) as response:
        raw = await response.read()
        return response.status, orjson.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


async def sse(http: aiohttp.ClientSession, mock: RunningMock, body: object) -> tuple[list[str], bool]:
    """The data payloads of a stream, and whether it ended cleanly."""
    events: list[str] = []
    async with http.post(f"{mock.url}/v1/chat/completions", json={**body, "stream": True}) as response:  # type: ignore[dict-item]
        assert response.headers["Content-Type"].startswith("text/event-stream")
        try:
            async for line in response.content:
                if line.startswith(b"data: "):
                    events.append(line[6:].decode().strip())
        except aiohttp.ClientPayloadError:
            return events, False
    return events, True


def chunks(events: list[str]) -> list[dict[str, Any]]:
    return [json.loads(event) for event in events if event != "[DONE]"]


# ---- wire format ----------------------------------------------------------------------------


async def test_chat_completion_matches_schema_and_is_deterministic(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    body = {"model": "gpt-4o-mini", "messages": user("What is the capital of France?")}
    status, raw = await post(http, mock, "/v1/chat/completions", body)
    assert status == 200
    validate("CreateChatCompletionResponse", raw)
    assert raw["id"].startswith("chatcmpl-") and raw["object"] == "chat.completion"
    usage = raw["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0

    first = await client.chat.completions.create(
        model="any-model-name", messages=user("What is the capital of France?")
    )
    again = await client.chat.completions.create(
        model="any-model-name", messages=user("What is the capital of France?")
    )
    text = first.choices[0].message.content
    assert text is not None and text.startswith("Mock reply to: What is the capital of France?")
    assert len(text.split()) == 12 and text == again.choices[0].message.content
    assert first.model == "any-model-name" and first.choices[0].finish_reason == "stop"
    assert first.choices[0].message.refusal is None and first.system_fingerprint
    assert first.usage is not None and first.usage.completion_tokens == content.count_tokens(text)


async def test_max_tokens_cuts_the_reply(client: openai.AsyncOpenAI) -> None:
    for limit in ("max_tokens", "max_completion_tokens"):
        reply = await client.chat.completions.create(model="gpt-4o", messages=user("hello"), **{limit: 3})  # type: ignore[call-overload]
        choice = reply.choices[0]
        assert choice.finish_reason == "length"
        assert choice.message.content and content.count_tokens(choice.message.content) <= 3
        assert reply.usage is not None and reply.usage.completion_tokens <= 3


async def test_stream_with_usage(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=user("stream me"), stream=True, stream_options={"include_usage": True}
    )
    received = [chunk async for chunk in stream]
    assert received[0].choices[0].delta.role == "assistant" and received[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text.startswith("Mock reply to: stream me") and len(text.split()) == 12
    assert received[-2].choices[0].finish_reason == "stop"
    assert received[-1].choices == [] and received[-1].usage is not None
    assert received[-1].usage.completion_tokens == content.count_tokens(text)
    assert all(c.usage is None for c in received[:-1])

    events, clean = await sse(
        http, mock, {"model": "m", "messages": user("x"), "stream_options": {"include_usage": True}}
    )
    assert clean and events[-1] == "[DONE]"
    for chunk in chunks(events):
        validate("CreateChatCompletionStreamResponse", chunk)
        assert "usage" in chunk
    # one word per content chunk
    assert [len(c["choices"][0]["delta"]["content"].split()) for c in chunks(events)[1:-2]] == [1] * 12


async def test_stream_without_usage_request_has_no_usage_field(
    mock: RunningMock, http: aiohttp.ClientSession
) -> None:
    events, clean = await sse(http, mock, {"model": "m", "messages": user("x")})
    assert clean and events[-1] == "[DONE]"
    assert all("usage" not in chunk for chunk in chunks(events))


async def test_tool_calls(mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession) -> None:
    tools: Any = [WEATHER_TOOL, TIME_TOOL]
    reply = await client.chat.completions.create(model="gpt-4o", messages=user("weather?"), tools=tools)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == WEATHER_ARGS

    forced = await client.chat.completions.create(
        model="gpt-4o", messages=user("time?"), tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    calls: Any = forced.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_time" and calls[0].function.arguments == "{}"

    declined = await client.chat.completions.create(
        model="gpt-4o", messages=user("hi"), tools=tools, tool_choice="none"
    )
    assert declined.choices[0].message.tool_calls is None and declined.choices[0].finish_reason == "stop"

    history: Any = [
        *user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    loop_done = await client.chat.completions.create(model="gpt-4o", tools=tools, messages=history)
    assert loop_done.choices[0].message.content and loop_done.choices[0].finish_reason == "stop"

    status, raw = await post(
        http, mock, "/v1/chat/completions", {"model": "m", "messages": user("x"), "tools": tools}
    )
    assert status == 200
    validate("CreateChatCompletionResponse", raw)


async def test_streamed_parallel_tool_calls_carry_indices(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    tools: Any = [WEATHER_TOOL, TIME_TOOL]
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=user("both [[mock:parallel_tools]]"), tools=tools, stream=True
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    fragments: dict[int, int] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            assert isinstance(delta.index, int)
            if delta.id is not None:
                assert (
                    delta.function is not None and delta.function.arguments == "" and delta.type == "function"
                )
                names[delta.index] = delta.function.name or ""
            elif delta.function is not None:
                arguments[delta.index] = arguments.get(delta.index, "") + (delta.function.arguments or "")
                fragments[delta.index] = fragments.get(delta.index, 0) + 1
    assert finish == "tool_calls" and names == {0: "get_weather", 1: "get_time"}
    assert json.loads(arguments[0]) == WEATHER_ARGS and json.loads(arguments[1]) == {}
    assert fragments[0] >= 3

    events, clean = await sse(http, mock, {"model": "m", "messages": user("x"), "tools": tools})
    assert clean
    for raw in chunks(events):
        validate("CreateChatCompletionStreamResponse", raw)


async def test_omit_tool_call_index_quirk(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    await mock.set_fault(omit_tool_call_index=True)
    body = {"model": "m", "messages": user("x [[mock:parallel_tools]]"), "tools": [WEATHER_TOOL]}
    events, clean = await sse(http, mock, body)
    deltas = [tc for c in chunks(events) for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert clean and len([d for d in deltas if "id" in d]) == 2
    assert deltas and all("index" not in d for d in deltas)
    await mock.clear_fault()
    events, _ = await sse(http, mock, body)
    assert all("index" in tc for c in chunks(events) for tc in c["choices"][0]["delta"].get("tool_calls", []))


async def test_json_modes(client: openai.AsyncOpenAI) -> None:
    plain = await client.chat.completions.create(
        model="gpt-4o", messages=user("json please"), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(plain.choices[0].message.content or ""), dict)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "ok": {"type": ["boolean", "null"]},
        },
        "required": ["name", "age", "ok"],
    }
    shaped = await client.chat.completions.create(
        model="gpt-4o", messages=user("person"),
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert json.loads(shaped.choices[0].message.content or "") == {"name": "mock", "age": 1, "ok": True}


async def test_embeddings(mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession) -> None:
    decoded = await client.embeddings.create(
        model="text-embedding-3-small", input=["a cat", "a dog"]
    )  # base64
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=["a cat", "a dog"], encoding_format="float"
    )
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert len(floats.data[0].embedding) == 1536 and floats.data[0].embedding != floats.data[1].embedding
    assert math.isclose(math.fsum(x * x for x in floats.data[0].embedding), 1.0, rel_tol=1e-5)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 4

    again = await client.embeddings.create(model="x", input="a cat", dimensions=64, encoding_format="float")
    assert len(again.data[0].embedding) == 64 and again.data[0].index == 0

    status, raw = await post(
        http, mock, "/v1/embeddings", {"model": "m", "input": "hello", "encoding_format": "float"}
    )
    assert status == 200
    validate("CreateEmbeddingResponse", raw)
    status, raw = await post(
        http, mock, "/v1/embeddings", {"model": "m", "input": "hello", "encoding_format": "base64"}
    )
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(packed) // 4}f", packed)) == list(content.embedding("hello", 1536))

    status, raw = await post(http, mock, "/v1/embeddings", {"model": "m", "input": [[1, 2, 3], [4, 5]]})
    assert status == 200 and len(raw["data"]) == 2 and raw["usage"]["prompt_tokens"] == 5
    status, raw = await post(http, mock, "/v1/embeddings", {"model": "m", "input": ""})
    assert status == 400
    validate("ErrorResponse", raw)


async def test_models(mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession) -> None:
    listed = [model.id async for model in client.models.list()]
    assert listed == list(MODELS)
    retrieved = await client.models.retrieve("gpt-4o")
    assert retrieved.id == "gpt-4o" and retrieved.object == "model"
    async with http.get(f"{mock.url}/v1/models") as response:
        validate("ListModelsResponse", await response.json())


async def test_strict_models_refuse_unknown_models() -> None:
    async with await start_mock(options=MockOptions(models=MODELS, strict_models=True)) as strict:
        sdk = openai.AsyncOpenAI(base_url=f"{strict.url}/v1", api_key="x", max_retries=0)
        await sdk.chat.completions.create(model="gpt-4o", messages=user("hi"))
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.chat.completions.create(model="gpt-9", messages=user("hi"))
        assert caught.value.code == "model_not_found"
        validate("ErrorResponse", caught.value.response.json())
        with pytest.raises(openai.NotFoundError):
            await sdk.embeddings.create(model="nope", input="x")
        await sdk.close()


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', None),
        (b'{"model": "gpt-4o"}', "messages"),
        (b'{"model": "gpt-4o", "messages": []}', "messages"),
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
            "max_tokens",
        ),
    ],
)
async def test_invalid_requests_get_openai_envelopes(
    mock: RunningMock, http: aiohttp.ClientSession, raw: bytes, param: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post(f"{mock.url}/v1/chat/completions", data=raw, headers=headers) as response:
        assert response.status == 400
        body = await response.json()
    validate("ErrorResponse", body)
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param


async def test_unknown_route_gets_an_envelope(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{mock.url}/v1/chat/completions") as response:
        assert response.status == 404
        validate("ErrorResponse", await response.json())


# ---- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("openai", None),
        ("string", {"error": "Mock fault: injected HTTP 503"}),
        ("detail", {"detail": "Mock fault: injected HTTP 503"}),
        ("text", "Mock fault: injected HTTP 503"),
    ],
)
async def test_status_fault_error_styles(
    mock: RunningMock, http: aiohttp.ClientSession, style: str, expected: object
) -> None:
    await mock.set_fault(status=503, error_style=style)
    status, body = await post(http, mock, "/v1/chat/completions", {"model": "m", "messages": user("x")})
    assert status == 503
    if expected is None:
        validate("ErrorResponse", body)
        assert body["error"]["type"] == "server_error"
    else:
        assert body == expected


async def test_status_fault_through_the_sdk(mock: RunningMock, client: openai.AsyncOpenAI) -> None:
    await mock.set_fault(status=429, retry_after=2)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"
    await mock.set_fault(status=500, retry_after=0.5)
    with pytest.raises(openai.InternalServerError) as server_error:
        await client.embeddings.create(model="e", input="x")
    assert server_error.value.response.headers["retry-after"] == "0.5"


async def test_drop_closes_the_connection(mock: RunningMock, client: openai.AsyncOpenAI) -> None:
    await mock.set_fault(drop=True, times=1)
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    reply = await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert reply.choices[0].message.content


async def test_cut_after_ends_a_stream_without_done(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    await mock.set_fault(cut_after=3)
    events, clean = await sse(
        http, mock, {"model": "m", "messages": user("x"), "stream_options": {"include_usage": True}}
    )
    assert not clean and len(events) == 3 and "[DONE]" not in events
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks(events))

    received = 0
    with pytest.raises(openai.APIConnectionError):
        stream = await client.chat.completions.create(model="gpt-4o", messages=user("hi"), stream=True)
        async for _ in stream:
            received += 1
    assert received <= 3


async def test_cut_after_truncates_a_plain_body(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    await mock.set_fault(cut_after=1)
    async with http.post(
        f"{mock.url}/v1/chat/completions", json={"model": "m", "messages": user("x")}
    ) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_latency_and_chunk_delay(mock: RunningMock, client: openai.AsyncOpenAI) -> None:
    await mock.set_fault(latency_ms=150)
    started = time.perf_counter()
    await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert time.perf_counter() - started >= 0.15
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="gpt-4o", messages=user("hi"), timeout=0.05)

    await mock.set_fault(chunk_delay_ms=15)
    started = time.perf_counter()
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=user("hi [[mock:words=5]]"), stream=True
    )
    stamps = [time.perf_counter() async for _ in stream]
    assert len(stamps) == 7 and stamps[-1] - started >= 6 * 0.015


async def test_times_clears_the_fault_after_n_requests(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    await mock.set_fault(status=503, times=2)
    for left in (1, None):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
        async with http.get(f"{mock.url}/__mock/faults") as response:
            assert (await response.json())["times_left"] == left
    assert mock.state.slot.fault is None
    await client.chat.completions.create(model="gpt-4o", messages=user("hi"))


async def test_stats_count_api_requests_only(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    await client.chat.completions.create(model="gpt-4o", messages=user("a"))
    await client.chat.completions.create(model="gpt-4o-mini", messages=user("b"))
    await client.embeddings.create(model="text-embedding-3-small", input="c")
    await mock.set_fault(status=500, times=1)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o", messages=user("d"))
    async with http.get(f"{mock.url}/__mock/stats") as response:
        over_http = await response.json()
    assert (
        over_http
        == mock.stats()
        == {
            "requests": 4,
            "by_path": {"/v1/chat/completions": 3, "/v1/embeddings": 1},
            "by_model": {"gpt-4o": 2, "gpt-4o-mini": 1, "text-embedding-3-small": 1},
        }
    )
    async with http.post(f"{mock.url}/__mock/reset") as response:
        assert response.status == 200
    assert mock.stats() == {"requests": 0, "by_path": {}, "by_model": {}}


async def test_control_endpoints(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    fault = {"status": 502, "latency_ms": 0, "drop": False, "cut_after": None, "times": None,
             "retry_after": None, "error_style": "detail", "cached_tokens": 5,
             "reasoning_tokens": 7}  # fmt: skip
    async with http.post(f"{mock.url}/__mock/faults", json=fault) as response:
        assert response.status == 200
        active = await response.json()
    assert active["fault"]["status"] == 502 and active["quirks"]["cached_tokens"] == 5
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert caught.value.status_code == 502

    async with http.delete(f"{mock.url}/__mock/faults") as response:
        assert (await response.json())["fault"] is None
    async with http.post(
        f"{mock.url}/__mock/faults", json={"reasoning_tokens": 7, "cached_tokens": 5}
    ) as response:
        assert response.status == 200
    reply = await client.chat.completions.create(model="gpt-4o", messages=user("hi"))
    assert reply.usage is not None and reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 7
    assert reply.usage.completion_tokens == 7 + content.count_tokens(reply.choices[0].message.content or "")
    assert (
        reply.usage.prompt_tokens_details is not None and reply.usage.prompt_tokens_details.cached_tokens == 5
    )

    for bad in ({"status": "soon"}, {"bogus": 1}, {"times": 0}, {"error_style": "xml"}, [1]):
        async with http.post(f"{mock.url}/__mock/faults", json=bad) as response:
            assert response.status == 400, bad
    with pytest.raises(ValueError, match="bogus"):
        await mock.set_fault(bogus=True)
    assert mock.stats()["requests"] == 2  # control calls are never counted


async def test_no_usage_quirk(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    await mock.set_fault(no_usage=True)
    events, clean = await sse(
        http, mock, {"model": "m", "messages": user("x"), "stream_options": {"include_usage": True}}
    )
    assert clean and events[-1] == "[DONE]"
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks(events))


async def test_directives_drive_one_request(
    mock: RunningMock, client: openai.AsyncOpenAI, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model="gpt-4o", messages=user("fail [[mock:status=500]]"))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(
            model="gpt-4o", messages=user("[[mock:status=429, retry_after=3, error_style=detail]] slow down")
        )
    assert caught.value.response.headers["retry-after"] == "3" and caught.value.body == {
        "detail": "Mock fault: injected HTTP 429"
    }
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-4o", messages=user("[[mock:drop]]"))

    long = await client.chat.completions.create(model="gpt-4o", messages=user("talk [[mock:words=50]]"))
    text = long.choices[0].message.content or ""
    assert len(text.split()) == 50 and "[[" not in text and text.startswith("Mock reply to: talk ")

    events, clean = await sse(http, mock, {"model": "m", "messages": user("[[mock:cut_after=2]]")})
    assert not clean and len(events) == 2

    started = time.perf_counter()
    await client.chat.completions.create(model="gpt-4o", messages=user("[[mock:latency_ms=100]]"))
    assert time.perf_counter() - started >= 0.1

    with pytest.raises(openai.BadRequestError, match="unknown mock setting"):
        await client.chat.completions.create(model="gpt-4o", messages=user("[[mock:explode]]"))
    # only the last user message counts
    ok = await client.chat.completions.create(
        model="gpt-4o",
        messages=[*user("[[mock:status=500]]"), {"role": "assistant", "content": "x"}, *user("fine")],
    )
    assert ok.choices[0].message.content


async def test_api_key_check() -> None:
    async with await start_mock(options=MockOptions(api_key="sk-test-secret")) as guarded:
        wrong = openai.AsyncOpenAI(base_url=f"{guarded.url}/v1", api_key="sk-wrong", max_retries=0)
        right = openai.AsyncOpenAI(base_url=f"{guarded.url}/v1", api_key="sk-test-secret", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.chat.completions.create(model="gpt-4o", messages=user("hi"))
        assert caught.value.code == "invalid_api_key"
        validate("ErrorResponse", caught.value.response.json())
        await right.chat.completions.create(model="gpt-4o", messages=user("hi"))
        await right.models.list()
        await wrong.close()
        await right.close()


async def test_initial_fault_and_quirks_from_options() -> None:
    options = MockOptions(fault=Fault(status=503, times=1), reasoning_tokens=4, reply_words=5)
    async with await start_mock(options=options) as started:
        sdk = openai.AsyncOpenAI(base_url=f"{started.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="gpt-4o", messages=user("hi"))
        reply = await sdk.chat.completions.create(model="gpt-4o", messages=user("hi"))
        assert reply.choices[0].message.content == " ".join(content.reply_words("hi", 5))
        assert len(content.reply_words("hi", 5)) == 5
        assert reply.usage is not None and reply.usage.completion_tokens_details is not None
        assert reply.usage.completion_tokens_details.reasoning_tokens == 4
        await sdk.close()


# ---- content ----------------------------------------------------------------------------------


def test_sample_values_follow_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/Inner"},
            "b": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "c": {"const": "fixed"},
            "d": {"type": ["null", "number"]},
        },
        "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "boolean"}}}},
    }
    assert content.sample_value(schema) == {"a": {"x": True}, "b": 1, "c": "fixed", "d": 1.5}
    assert content.tool_arguments({}) == "{}"
    assert content.tool_arguments({"type": "object"}) == "{}"


def test_tokens_and_vectors_are_deterministic() -> None:
    assert (
        content.count_tokens("") == 0
        and content.count_tokens("abcd") == 1
        and content.count_tokens("abcde") == 2
    )
    assert content.count_prompt_tokens([{"role": "user", "content": "abcd"}]) == 3 + 3 + 1 + 1
    vector = content.embedding("x", 8)
    assert vector == content.embedding("x", 8) and vector != content.embedding("y", 8)
    assert struct.unpack("<8f", base64.b64decode(content.embedding_base64(vector))) == vector
    assert content.reply_words("a b", 2) == ("Mock", "reply")

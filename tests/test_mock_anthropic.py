"""The mock's Anthropic Messages API, driven over real sockets by the official anthropic SDK and raw HTTP.

Answers must match the OpenAI mock's for the same question (text, token counts), so a test can send
one question through different upstreams; every fault kind and error type is exercised once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import httpx2 as httpx
import openai
import pytest
from anthropic.types import Message, MessageParam, RawMessageStreamEvent, ToolParam
from pydantic import TypeAdapter

from tollway.mock import MockOptions, RunningMock, content, start_mock

MODELS = ("claude-opus-4-7", "claude-haiku-4-9", "gpt-4o")
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "x"}
WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
}
WEATHER_ARGS = {"city": "mock", "days": 1, "unit": "celsius"}
TIME: ToolParam = {"name": "get_time", "input_schema": {"type": "object"}}
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
EVENTS: TypeAdapter[RawMessageStreamEvent] = TypeAdapter(RawMessageStreamEvent)


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


@pytest.fixture
async def mock() -> AsyncIterator[RunningMock]:
    async with await start_mock(options=MockOptions(models=MODELS)) as running:
        yield running


@pytest.fixture
async def client(mock: RunningMock) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(base_url=mock.url, api_key="x", max_retries=0, timeout=5)
    yield sdk
    await sdk.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, mock: RunningMock, body: object, headers: dict[str, str] = HEADERS
) -> tuple[int, Any]:
    async with http.post(f"{mock.url}/v1/messages", json=body, headers=headers) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw[:1] == b"{" else raw.decode()


async def sse(
    http: aiohttp.ClientSession, mock: RunningMock, body: dict[str, Any]
) -> tuple[list[tuple[str, Any]], bool]:
    """Each whole SSE event as (event name, decoded data), and whether the stream ended cleanly."""
    raw, clean = b"", True
    async with http.post(
        f"{mock.url}/v1/messages", json={**body, "stream": True}, headers=HEADERS
    ) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        try:
            async for data in response.content.iter_any():
                raw += data
        except aiohttp.ClientPayloadError:
            clean = False
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(lines) == {"event", "data"}, block  # every event is named
        events.append((lines["event"], json.loads(lines["data"])))
    return events, clean


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-opus-4-7", "max_tokens": 1024, "messages": user(text), **extra}


def blocks(message: Message) -> list[dict[str, Any]]:
    """The content without the tool_use ids, which differ between requests."""
    return [{k: v for k, v in b.model_dump(exclude_none=True).items() if k != "id"} for b in message.content]


# ---- wire format ----------------------------------------------------------------------------


async def test_answer_matches_the_openai_mock(mock: RunningMock, client: anthropic.AsyncAnthropic) -> None:
    question = "What is the capital of France?"
    reply = await client.messages.create(
        model="claude-opus-4-7", max_tokens=1024, system="Be brief.", messages=user(question)
    )
    assert reply.id.startswith("msg_") and reply.type == "message" and reply.role == "assistant"
    assert (
        reply.model == "claude-opus-4-7" and reply.stop_reason == "end_turn" and reply.stop_sequence is None
    )
    assert len(reply.content) == 1 and reply.content[0].type == "text"

    oa = openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    same = await oa.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
    )
    await oa.close()
    assert reply.content[0].text == same.choices[0].message.content
    assert same.usage is not None
    assert reply.usage.input_tokens == same.usage.prompt_tokens
    assert reply.usage.output_tokens == same.usage.completion_tokens
    assert reply.usage.cache_read_input_tokens == reply.usage.cache_creation_input_tokens == 0

    again = await client.messages.create(model="claude-haiku-4-9", max_tokens=1024, messages=user(question))
    assert again.content == reply.content
    counted = await client.messages.count_tokens(
        model="claude-opus-4-7", system="Be brief.", messages=user(question)
    )
    assert counted.input_tokens == reply.usage.input_tokens


async def test_stream_events_and_final_message(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    events, clean = await sse(http, mock, body("stream me"))
    assert clean
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") == 12  # one word each
    for name, data in events:
        assert data["type"] == name
        if name != "ping":
            EVENTS.validate_python(data)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 1
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert set(delta["usage"]) == {"output_tokens"}

    created = await client.messages.create(**body("stream me"))
    async with client.messages.stream(**body("stream me")) as stream:
        streamed = await stream.get_final_message()
    assert blocks(streamed) == blocks(created) and streamed.stop_reason == "end_turn"
    assert streamed.usage.output_tokens == created.usage.output_tokens
    assert streamed.usage.input_tokens == created.usage.input_tokens


async def test_tools_answer_text_then_tool_use(client: anthropic.AsyncAnthropic) -> None:
    reply = await client.messages.create(**body("weather in Paris?", tools=[WEATHER, TIME]))
    assert reply.stop_reason == "tool_use" and [b.type for b in reply.content] == ["text", "tool_use"]
    call = reply.content[1]
    assert call.type == "tool_use" and call.id.startswith("toolu_")
    assert call.name == "get_weather" and call.input == WEATHER_ARGS

    parallel = await client.messages.create(**body("both [[mock:parallel_tools]]", tools=[WEATHER, TIME]))
    assert [b.type for b in parallel.content] == ["text", "tool_use", "tool_use"]
    assert [getattr(b, "name", None) for b in parallel.content[1:]] == ["get_weather", "get_time"]
    assert len({b.id for b in parallel.content if b.type == "tool_use"}) == 2
    single = await client.messages.create(
        **body("both [[mock:parallel_tools]]", tools=[WEATHER, TIME]),
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
    )
    assert [b.type for b in single.content] == ["text", "tool_use"]

    forced = await client.messages.create(
        **body("time?", tools=[WEATHER, TIME]), tool_choice={"type": "tool", "name": "get_time"}
    )
    assert [b.model_dump(exclude={"id"}, exclude_none=True) for b in forced.content] == [
        {"type": "tool_use", "name": "get_time", "input": {}}
    ]
    any_tool = await client.messages.create(**body("x", tools=[WEATHER]), tool_choice={"type": "any"})
    assert [b.type for b in any_tool.content] == ["tool_use"]
    declined = await client.messages.create(**body("x", tools=[WEATHER]), tool_choice={"type": "none"})
    assert [b.type for b in declined.content] == ["text"] and declined.stop_reason == "end_turn"

    history: list[MessageParam] = [
        *user("weather in Paris?"),
        reply.to_param(),
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    done = await client.messages.create(model="m", max_tokens=1024, tools=[WEATHER], messages=history)
    assert done.stop_reason == "end_turn" and done.content[0].type == "text"
    assert done.content[0].text.startswith("Mock reply to: weather in Paris?")


async def test_streamed_tool_use(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    request = body("both [[mock:parallel_tools]]", tools=[WEATHER, TIME])
    events, clean = await sse(http, mock, request)
    assert clean
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use", "tool_use"]
    assert starts[1]["input"] == {} and starts[1]["name"] == "get_weather"
    fragments = [
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["index"] == 1
    ]
    assert fragments[0] == "" and len(fragments) >= 4  # an empty opener, then pieces of the object
    assert json.loads("".join(fragments)) == WEATHER_ARGS
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    created = await client.messages.create(**request)
    async with client.messages.stream(**request) as stream:
        streamed = await stream.get_final_message()
    assert blocks(streamed) == blocks(created)


async def test_thinking_blocks_and_signatures(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    request = body("weather?", max_tokens=2048, thinking=THINKING, tools=[WEATHER])
    reply = await client.messages.create(**request)
    assert [b.type for b in reply.content] == ["thinking", "text", "tool_use"]
    thinking = reply.content[0]
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    details = reply.usage.output_tokens_details
    assert details is not None and details.thinking_tokens == content.count_tokens(thinking.thinking)
    assert reply.usage.output_tokens > details.thinking_tokens

    events, _ = await sse(http, mock, request)
    deltas = [
        data["delta"]["type"] for name, data in events if name == "content_block_delta" and data["index"] == 0
    ]
    assert deltas[0] == "thinking_delta" and deltas[-1] == "signature_delta"
    assert deltas.count("signature_delta") == 1
    async with client.messages.stream(**request) as stream:
        streamed = await stream.get_final_message()
    assert blocks(streamed) == blocks(reply)

    call = reply.content[2]
    assert call.type == "tool_use"
    result: MessageParam = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}],
    }
    history: list[MessageParam] = [*user("weather?"), reply.to_param(), result]
    done = await client.messages.create(
        model="m", max_tokens=2048, thinking=THINKING, tools=[WEATHER], messages=history
    )
    assert [b.type for b in done.content] == ["thinking", "text"]

    forged: Any = json.loads(json.dumps(history, default=lambda b: b.model_dump(exclude_none=True)))
    forged[1]["content"][0]["thinking"] += " (edited)"
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        await client.messages.create(
            model="m", max_tokens=2048, thinking=THINKING, tools=[WEATHER], messages=forged
        )
    dropped: Any = json.loads(json.dumps(history, default=lambda b: b.model_dump(exclude_none=True)))
    del dropped[1]["content"][0]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await client.messages.create(
            model="m", max_tokens=2048, thinking=THINKING, tools=[WEATHER], messages=dropped
        )

    omitted = await client.messages.create(
        **body("x", max_tokens=2048, thinking={**THINKING, "display": "omitted"})
    )
    assert (
        omitted.content[0].type == "thinking"
        and omitted.content[0].thinking == ""
        and omitted.content[0].signature
    )


async def test_max_tokens_cuts_text_like_openai(mock: RunningMock, client: anthropic.AsyncAnthropic) -> None:
    reply = await client.messages.create(**body("hello", max_tokens=3))
    assert reply.stop_reason == "max_tokens" and reply.usage.output_tokens <= 3
    oa = openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    same = await oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], max_tokens=3
    )
    await oa.close()
    assert reply.content[0].type == "text" and reply.content[0].text == same.choices[0].message.content


async def test_max_tokens_cuts_inside_tool_arguments(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    request = body("weather?", max_tokens=14, tools=[WEATHER])
    events, clean = await sse(http, mock, request)
    assert clean and events[-1][0] == "message_stop"
    partial = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    )
    assert partial.startswith("{") and len(partial) < len(json.dumps(WEATHER_ARGS))
    with pytest.raises(json.JSONDecodeError):
        json.loads(partial)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2][1]["usage"]["output_tokens"] <= 14

    reply = await client.messages.create(**request)
    assert reply.stop_reason == "max_tokens" and [b.type for b in reply.content] == ["text", "tool_use"]
    assert reply.content[1].type == "tool_use" and reply.content[1].input == {}


async def test_stop_sequences(client: anthropic.AsyncAnthropic) -> None:
    reply = await client.messages.create(**body("hello there", stop_sequences=["there", "to:"]))
    assert reply.stop_reason == "stop_sequence" and reply.stop_sequence == "to:"
    assert reply.content[0].type == "text" and reply.content[0].text == "Mock reply "


async def test_structured_output(client: anthropic.AsyncAnthropic) -> None:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    }
    reply = await client.messages.create(
        **body("person"), output_config={"format": {"type": "json_schema", "schema": schema}}
    )
    assert reply.content[0].type == "text" and json.loads(reply.content[0].text) == {"name": "mock", "age": 1}


async def test_cache_and_reasoning_quirks(mock: RunningMock, client: anthropic.AsyncAnthropic) -> None:
    plain = await client.messages.create(**body("hi"))
    await mock.set_fault(cached_tokens=4, reasoning_tokens=7)
    quirky = await client.messages.create(**body("hi"))
    assert quirky.usage.cache_read_input_tokens == 4
    assert quirky.usage.input_tokens == plain.usage.input_tokens - 4  # input EXCLUDES cache reads
    assert quirky.usage.output_tokens == plain.usage.output_tokens + 7
    assert (
        quirky.usage.output_tokens_details is not None
        and quirky.usage.output_tokens_details.thinking_tokens == 7
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"model": None}, "model: Field required"),
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "Input tag 'image_url'",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "non-empty"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                            }
                        ],
                    }
                ]
            },
            "media_type",
        ),
        (
            {
                "messages": [
                    *user("x"),
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
                    },
                    *user("y"),
                ]
            },
            "without `tool_result` blocks",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9"}]}]},
            "unexpected `tool_use_id`",
        ),
        ({"temperature": 1.5}, "temperature"),
        ({"tools": [{"name": "get.weather", "input_schema": {"type": "object"}}]}, "tools.0.custom.name"),
        ({"tools": [{"name": "f"}]}, "input_schema"),
        ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER]}, "tool_choice"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "greater than or equal to 1024"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "must be greater than `thinking.budget_tokens`",
        ),
        (
            {"thinking": THINKING, "max_tokens": 2048, "tools": [WEATHER], "tool_choice": {"type": "any"}},
            "forces tool use",
        ),
        ({"thinking": THINKING, "max_tokens": 2048, "temperature": 0.5}, "temperature"),
        ({"stream": "yes"}, "stream"),
    ],
)
async def test_invalid_requests(
    mock: RunningMock, http: aiohttp.ClientSession, change: dict[str, Any], message: str
) -> None:
    request = {**body("hello"), **change}
    request = {k: v for k, v in request.items() if v is not None}
    status, error = await post(http, mock, request)
    assert status == 400, error
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"] and error["request_id"].startswith("req_")


async def test_version_header_and_json_are_required(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    status, error = await post(http, mock, body("x"), headers={"x-api-key": "x"})
    assert status == 400 and "anthropic-version" in error["error"]["message"]
    async with http.post(f"{mock.url}/v1/messages", data=b"{nope", headers=HEADERS) as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_count_tokens(client: anthropic.AsyncAnthropic) -> None:
    plain = await client.messages.count_tokens(model="claude-opus-4-7", messages=user("hello"))
    with_tools = await client.messages.count_tokens(
        model="claude-opus-4-7", messages=user("hello"), tools=[WEATHER]
    )
    assert 0 < plain.input_tokens < with_tools.input_tokens
    reply = await client.messages.create(**body("hello", tools=[WEATHER]))
    assert reply.usage.input_tokens == with_tools.input_tokens


# ---- faults and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind", "exception"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (503, "api_error", anthropic.InternalServerError),
        (529, "overloaded_error", anthropic.InternalServerError),
    ],
)
async def test_status_faults_map_to_sdk_errors(
    mock: RunningMock, client: anthropic.AsyncAnthropic, status: int, kind: str, exception: type[Exception]
) -> None:
    await mock.set_fault(status=status, retry_after=2)
    with pytest.raises(exception) as caught:
        await client.messages.create(**body("hi"))
    error: Any = caught.value
    assert error.status_code == status and error.type == kind
    assert error.response.headers["retry-after"] == "2" and error.request_id.startswith("req_")
    if status == 529:
        assert isinstance(error, anthropic.OverloadedError)


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("string", {"error": "Mock fault: injected HTTP 503"}),
        ("detail", {"detail": "Mock fault: injected HTTP 503"}),
        ("text", "Mock fault: injected HTTP 503"),
    ],
)
async def test_error_styles(
    mock: RunningMock, http: aiohttp.ClientSession, style: str, expected: object
) -> None:
    status, error = await post(http, mock, body(f"x [[mock:status=503,error_style={style}]]"))
    assert status == 503 and error == expected


async def test_drop_latency_and_times(mock: RunningMock, client: anthropic.AsyncAnthropic) -> None:
    await mock.set_fault(drop=True, times=1)
    with pytest.raises(anthropic.APIConnectionError):
        await client.messages.create(**body("hi"))
    await client.messages.create(**body("hi"))

    started = time.perf_counter()
    await client.messages.create(**body("hi [[mock:latency_ms=100]]"))
    assert time.perf_counter() - started >= 0.1
    with pytest.raises(anthropic.APITimeoutError):
        await client.messages.create(**body("hi [[mock:latency_ms=300]]"), timeout=0.05)


async def test_cut_after_ends_the_stream_early(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    events, clean = await sse(http, mock, body("x [[mock:cut_after=3]]"))
    assert not clean and [name for name, _ in events] == ["message_start", "ping", "content_block_start"]
    await mock.set_fault(cut_after=5)
    seen: list[str] = []
    # anthropic >= 2.17 reports a body cut mid-stream as a connection error (older releases let the
    # transport's error through unwrapped); what broke is still the peer closing mid-body
    with pytest.raises(anthropic.APIConnectionError) as raised:
        async with client.messages.stream(**body("hi")) as stream:
            async for event in stream:
                seen.append(event.type)
    assert isinstance(raised.value.__cause__, httpx.RemoteProtocolError), repr(raised.value.__cause__)
    assert "incomplete chunked read" in str(raised.value.__cause__)
    # the five events before the cut arrived (the SDK drops the ping and adds a "text" per delta)
    delta = ["content_block_delta", "text"]
    assert seen == ["message_start", "content_block_start", *delta, *delta]
    async with http.post(f"{mock.url}/v1/messages", json=body("x"), headers=HEADERS) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_stream_error_event(
    mock: RunningMock, client: anthropic.AsyncAnthropic, http: aiohttp.ClientSession
) -> None:
    events, clean = await sse(http, mock, body("x [[mock:stream_error]]"))
    assert clean and [name for name, _ in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "error",
    ]  # fmt: skip
    assert events[-1][1]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(**body("x [[mock:stream_error]]")) as stream:
            async for _ in stream:
                pass
    assert caught.value.type == "overloaded_error"


async def test_stats_count_anthropic_requests(mock: RunningMock, client: anthropic.AsyncAnthropic) -> None:
    await client.messages.create(**body("a"))
    await client.messages.count_tokens(model="claude-haiku-4-9", messages=user("b"))
    with pytest.raises(anthropic.InternalServerError):
        await client.messages.create(**body("c [[mock:status=500]]"))
    assert mock.stats() == {
        "requests": 3,
        "by_path": {"/v1/messages": 2, "/v1/messages/count_tokens": 1},
        "by_model": {"claude-opus-4-7": 2, "claude-haiku-4-9": 1},
    }


async def test_api_key_and_unknown_models() -> None:
    options = MockOptions(models=MODELS, api_key="sk-ant-secret", strict_models=True)
    async with await start_mock(options=options) as guarded:
        wrong = anthropic.AsyncAnthropic(base_url=guarded.url, api_key="sk-wrong", max_retries=0)
        right = anthropic.AsyncAnthropic(base_url=guarded.url, api_key="sk-ant-secret", max_retries=0)
        bearer = anthropic.AsyncAnthropic(base_url=guarded.url, auth_token="sk-ant-secret", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await wrong.messages.create(**body("hi"))
        assert caught.value.type == "authentication_error" and caught.value.api_message == "invalid x-api-key"
        await right.messages.create(**body("hi"))
        await bearer.messages.create(**body("hi"))
        with pytest.raises(anthropic.NotFoundError) as missing:
            await right.messages.create(**{**body("hi"), "model": "claude-9"})
        assert missing.value.type == "not_found_error" and missing.value.api_message == "model: claude-9"
        for sdk in (wrong, right, bearer):
            await sdk.close()

"""The mock's Gemini ``generateContent`` API over real sockets: raw HTTP for the wire details (CRLF
SSE, whole function calls, usageMetadata), the ``google-genai`` SDK as the client users have.

Answers must match the OpenAI mock's for the same question; every fault kind is exercised once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from tollway.mock import MockOptions, RunningMock, content, start_mock

MODELS = ("gemini-2.5-flash", "gemini-3-pro-preview", "gpt-4o")
MODEL = "gemini-2.5-flash"
HEADERS = {"x-goog-api-key": "k"}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "days": {"type": "INTEGER"},
            "unit": {"type": "STRING", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city"],
    },
}
WEATHER_ARGS = {"city": "mock", "days": 1, "unit": "celsius"}
TIME = {"name": "get_time"}
TOOLS = [{"functionDeclarations": [WEATHER, TIME]}]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": text}]}]


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": user(text), **extra}


@pytest.fixture
async def mock() -> AsyncIterator[RunningMock]:
    async with await start_mock(options=MockOptions(models=MODELS)) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(mock: RunningMock) -> AsyncIterator[genai.Client]:
    sdk = genai.Client(api_key="k", http_options=gtypes.HttpOptions(base_url=mock.url, timeout=5000))
    yield sdk
    await sdk.aio.aclose()


async def generate(
    http: aiohttp.ClientSession,
    mock: RunningMock,
    request: object,
    *,
    model: str = MODEL,
    version: str = "v1beta",
) -> tuple[int, Any]:
    url = f"{mock.url}/{version}/models/{model}:generateContent"
    async with http.post(url, json=request, headers=HEADERS) as response:
        raw = await response.read()
        return response.status, json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()


async def stream(
    http: aiohttp.ClientSession, mock: RunningMock, request: object, *, model: str = MODEL
) -> tuple[list[dict[str, Any]], bytes, bool]:
    """The decoded chunks, the raw bytes, and whether the stream ended cleanly."""
    url = f"{mock.url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
    chunks: list[dict[str, Any]] = []
    raw = b""
    async with http.post(url, json=request, headers=HEADERS) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        try:
            async for data in response.content.iter_any():
                raw += data
        except aiohttp.ClientPayloadError:
            return [json.loads(e[6:]) for e in raw.split(b"\r\n\r\n") if e], raw, False
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""  # every event ends with a blank CRLF line
    for event in events[:-1]:
        assert event.startswith(b"data: ") and b"\n" not in event  # one data line, no event: line
        chunks.append(json.loads(event[6:]))
    return chunks, raw, True


def text_of(response: dict[str, Any]) -> str:
    parts = response["candidates"][0]["content"].get("parts", [])
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


# ---- wire format ----------------------------------------------------------------------------


async def test_answer_matches_the_openai_mock(
    mock: RunningMock, http: aiohttp.ClientSession, client: genai.Client
) -> None:
    question = "What is the capital of France?"
    request = body(question, systemInstruction={"parts": [{"text": "Be brief."}]})
    status, reply = await generate(http, mock, request)
    assert status == 200
    gtypes.GenerateContentResponse.model_validate(reply)
    candidate = reply["candidates"][0]
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    assert candidate["content"]["role"] == "model" and reply["modelVersion"] == MODEL and reply["responseId"]

    oa = openai.AsyncOpenAI(base_url=f"{mock.url}/v1", api_key="x", max_retries=0)
    same = await oa.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
    )
    await oa.close()
    assert text_of(reply) == same.choices[0].message.content and same.usage is not None
    usage = reply["usageMetadata"]
    assert usage["promptTokenCount"] == same.usage.prompt_tokens
    assert usage["candidatesTokenCount"] == same.usage.completion_tokens
    assert usage["totalTokenCount"] == same.usage.total_tokens
    assert usage["promptTokensDetails"] == [{"modality": "TEXT", "tokenCount": same.usage.prompt_tokens}]
    assert "thoughtsTokenCount" not in usage and "cachedContentTokenCount" not in usage  # zeros are omitted

    status, v1 = await generate(http, mock, request, version="v1")  # the SDK's default version
    assert status == 200 and text_of(v1) == text_of(reply)
    sdk = await client.aio.models.generate_content(
        model=MODEL, contents=question, config=gtypes.GenerateContentConfig(system_instruction="Be brief.")
    )
    assert sdk.text == text_of(reply)
    assert (
        sdk.usage_metadata is not None and sdk.usage_metadata.prompt_token_count == usage["promptTokenCount"]
    )
    counted = await client.aio.models.count_tokens(model=MODEL, contents=question)
    assert counted.total_tokens == content.count_prompt_tokens([{"role": "user", "content": question}])


async def test_stream_uses_crlf_and_finishes_with_usage(
    mock: RunningMock, http: aiohttp.ClientSession, client: genai.Client
) -> None:
    chunks, raw, clean = await stream(http, mock, body("stream me [[mock:words=12]]"))
    assert clean and b"[DONE]" not in raw and raw.count(b"\r\n\r\n") == len(chunks) == 3
    for chunk in chunks:
        gtypes.GenerateContentResponse.model_validate(chunk)
    assert [len(text_of(c).split()) for c in chunks] == [4, 4, 4]  # a few words per chunk
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert len({c["responseId"] for c in chunks}) == 1
    text = "".join(text_of(c) for c in chunks)
    status, whole = await generate(http, mock, body("stream me [[mock:words=12]]"))
    assert status == 200 and text == text_of(whole)
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
    assert all(
        set(c["usageMetadata"]) == {"promptTokenCount", "totalTokenCount", "promptTokensDetails"}
        for c in chunks[:-1]
    )

    pieces = [
        chunk.text or ""
        async for chunk in await client.aio.models.generate_content_stream(
            model=MODEL, contents="stream me [[mock:words=12]]"
        )
    ]
    assert "".join(pieces) == text and len(pieces) == 3


async def test_function_calls_are_whole(
    mock: RunningMock, http: aiohttp.ClientSession, client: genai.Client
) -> None:
    status, reply = await generate(http, mock, body("weather?", tools=TOOLS))
    parts = reply["candidates"][0]["content"]["parts"]
    assert status == 200 and reply["candidates"][0]["finishReason"] == "STOP"  # not a tool-call reason
    assert len(parts) == 1 and parts[0]["functionCall"] == {"name": "get_weather", "args": WEATHER_ARGS}
    assert parts[0]["thoughtSignature"] and "id" not in parts[0]["functionCall"]
    assert reply["usageMetadata"]["candidatesTokenCount"] == content.count_tokens(
        "get_weather"
    ) + content.count_tokens(json.dumps(WEATHER_ARGS, separators=(",", ":")))

    chunks, _, clean = await stream(http, mock, body("both [[mock:parallel_tools]]", tools=TOOLS))
    assert clean and len(chunks) == 1
    calls = [p["functionCall"] for p in chunks[0]["candidates"][0]["content"]["parts"]]
    assert calls == [{"name": "get_weather", "args": WEATHER_ARGS}, {"name": "get_time", "args": {}}]

    forced = body(
        "x",
        tools=TOOLS,
        toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
    )
    _, reply = await generate(http, mock, forced)
    assert reply["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_time"
    _, declined = await generate(
        http, mock, body("x", tools=TOOLS, toolConfig={"functionCallingConfig": {"mode": "NONE"}})
    )
    assert text_of(declined).startswith("Mock reply to: x")

    call_part = {
        "functionCall": {"name": "get_weather", "args": WEATHER_ARGS},
        "thoughtSignature": parts[0]["thoughtSignature"],
    }
    answer = {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}}],
    }
    history = [*user("weather?"), {"role": "model", "parts": [call_part]}, answer]
    _, done = await generate(http, mock, {"contents": history, "tools": TOOLS})
    assert text_of(done).startswith("Mock reply to: weather?")

    unsigned = [
        *user("weather?"),
        {"role": "model", "parts": [{"functionCall": call_part["functionCall"]}]},
        answer,
    ]
    status, _ = await generate(http, mock, {"contents": unsigned, "tools": TOOLS})
    assert status == 200  # gemini-2.5 does not insist on signatures
    status, refused = await generate(
        http, mock, {"contents": unsigned, "tools": TOOLS}, model="gemini-3-pro-preview"
    )
    assert status == 400 and "thought_signature" in refused["error"]["message"]
    skipped = json.loads(json.dumps(unsigned))
    skipped[1]["parts"][0]["thoughtSignature"] = "skip_thought_signature_validator"
    status, _ = await generate(
        http, mock, {"contents": skipped, "tools": TOOLS}, model="gemini-3-pro-preview"
    )
    assert status == 200

    sdk = await client.aio.models.generate_content(
        model=MODEL,
        contents="weather?",
        config=gtypes.GenerateContentConfig(
            tools=[gtypes.Tool(function_declarations=[gtypes.FunctionDeclaration.model_validate(WEATHER)])],
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        ),
    )
    assert sdk.function_calls is not None and sdk.function_calls[0].args == WEATHER_ARGS


async def test_thoughts_are_outside_candidates_tokens(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    config = {"thinkingConfig": {"includeThoughts": True}}
    _, reply = await generate(http, mock, body("think", generationConfig=config))
    parts = reply["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[0]["text"] and "thought" not in parts[1]
    usage = reply["usageMetadata"]
    assert usage["thoughtsTokenCount"] == content.count_tokens(parts[0]["text"])
    assert usage["candidatesTokenCount"] == content.count_tokens(parts[1]["text"])
    assert (
        usage["totalTokenCount"]
        == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )

    chunks, _, _ = await stream(http, mock, body("think", generationConfig=config))
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["thought"] is True
    assert chunks[-1]["usageMetadata"] == usage

    await mock.set_fault(reasoning_tokens=40, cached_tokens=3)
    _, quirky = await generate(http, mock, body("think"))
    usage = quirky["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 40 and usage["cachedContentTokenCount"] == 3
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + 40
    assert len(quirky["candidates"][0]["content"]["parts"]) == 1  # no summary unless includeThoughts


async def test_max_output_tokens(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    _, cut = await generate(http, mock, body("hello", generationConfig={"maxOutputTokens": 3}))
    assert cut["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert content.count_tokens(text_of(cut)) <= 3
    thinking = {"maxOutputTokens": 5, "thinkingConfig": {"includeThoughts": True}}
    _, starved = await generate(http, mock, body("hello", generationConfig=thinking))
    candidate = starved["candidates"][0]
    assert candidate["finishReason"] == "MAX_TOKENS" and candidate["content"] == {"role": "model"}  # no parts
    assert "candidatesTokenCount" not in starved["usageMetadata"]

    _, stopped = await generate(
        http, mock, body("hello there", generationConfig={"stopSequences": ["there"]})
    )
    assert text_of(stopped) == "Mock reply to: hello " and stopped["candidates"][0]["finishReason"] == "STOP"
    _, two = await generate(http, mock, body("hi", generationConfig={"candidateCount": 2}))
    assert [c["index"] for c in two["candidates"]] == [0, 1] and text_of(two)


async def test_json_mode(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}}}
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    _, shaped = await generate(http, mock, body("person", generationConfig=config))
    assert json.loads(text_of(shaped)) == {"name": "mock", "age": 1}
    _, plain = await generate(
        http, mock, body("json", generation_config={"response_mime_type": "application/json"})
    )
    assert isinstance(json.loads(text_of(plain)), dict)  # snake_case names are accepted, as by the API


@pytest.mark.parametrize(
    ("request_body", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}, 'Unknown name "type"'),
        (body("x", generationConfig={"maxTokens": 5}), 'Unknown name "maxTokens"'),
        (body("x", generationConfig={"temperature": 2.5}), "temperature"),
        (body("x", stream=True), 'Unknown name "stream"'),
        (
            body(
                "x",
                tools=[
                    {
                        "functionDeclarations": [
                            {**WEATHER, "parameters": {"type": "object", "additionalProperties": False}}
                        ]
                    }
                ],
            ),
            'Unknown name "additionalProperties"',
        ),
        (
            body(
                "x",
                tools=[{"functionDeclarations": [{**WEATHER, "parameters": {"type": ["string", "null"]}}]}],
            ),
            "type",
        ),
        (body("x", tools=[{"functionDeclarations": [{"name": "get weather"}]}]), "Invalid function name"),
        (
            body(
                "x",
                tools=TOOLS,
                toolConfig={"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}},
            ),
            "allowed_function_names",
        ),
        (body("x", generationConfig={"responseSchema": {"type": "OBJECT"}}), "response_mime_type"),
    ],
)
async def test_invalid_requests(
    mock: RunningMock, http: aiohttp.ClientSession, request_body: dict[str, Any], message: str
) -> None:
    status, error = await generate(http, mock, request_body)
    assert status == 400, error
    assert error["error"]["code"] == 400 and error["error"]["status"] == "INVALID_ARGUMENT"
    assert message in error["error"]["message"]


async def test_routes(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    url = f"{mock.url}/v1beta/models/{MODEL}:streamGenerateContent"
    async with http.post(url, json=body("x"), headers=HEADERS) as response:  # no alt=sse: one JSON array
        assert response.headers["Content-Type"].startswith("application/json")
        array = await response.json()
    assert isinstance(array, list) and array[-1]["candidates"][0]["finishReason"] == "STOP"
    async with http.post(
        f"{mock.url}/v1beta/models/{MODEL}:embedEverything", json={}, headers=HEADERS
    ) as response:
        assert response.status == 404 and (await response.json())["error"]["status"] == "NOT_FOUND"
    async with http.post(
        f"{mock.url}/v1beta/models/{MODEL}:countTokens", json=body("hello"), headers=HEADERS
    ) as response:
        counted = await response.json()
    assert counted["totalTokens"] == counted["promptTokensDetails"][0]["tokenCount"] > 0


# ---- faults and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "exception"),
    [
        (400, "INVALID_ARGUMENT", genai_errors.ClientError),
        (401, "UNAUTHENTICATED", genai_errors.ClientError),
        (403, "PERMISSION_DENIED", genai_errors.ClientError),
        (404, "NOT_FOUND", genai_errors.ClientError),
        (429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
        (500, "INTERNAL", genai_errors.ServerError),
        (503, "UNAVAILABLE", genai_errors.ServerError),
        (504, "DEADLINE_EXCEEDED", genai_errors.ServerError),
    ],
)
async def test_status_faults(
    mock: RunningMock,
    http: aiohttp.ClientSession,
    client: genai.Client,
    status: int,
    name: str,
    exception: type[Exception],
) -> None:
    await mock.set_fault(status=status, retry_after=2)
    code, error = await generate(http, mock, body("hi"))
    assert code == status and error == {
        "error": {"code": status, "message": "Mock fault: injected HTTP " + str(status), "status": name}
    }
    with pytest.raises(exception) as caught:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    assert caught.value.code == status and caught.value.status == name  # type: ignore[attr-defined]


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
    status, error = await generate(http, mock, body(f"x [[mock:status=503,error_style={style}]]"))
    assert status == 503 and error == expected


async def test_drop_latency_cut_and_stream_error(mock: RunningMock, http: aiohttp.ClientSession) -> None:
    url = f"{mock.url}/v1beta/models/{MODEL}:generateContent"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await generate(http, mock, body("x [[mock:drop]]"))
    started = time.perf_counter()
    await generate(http, mock, body("x [[mock:latency_ms=100]]"))
    assert time.perf_counter() - started >= 0.1

    chunks, _, clean = await stream(http, mock, body("x [[mock:cut_after=1,words=12]]"))
    assert not clean and len(chunks) == 1 and "finishReason" not in chunks[0]["candidates"][0]
    async with http.post(url, json=body("x [[mock:cut_after=1]]"), headers=HEADERS) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()

    chunks, _, clean = await stream(http, mock, body("x [[mock:stream_error,words=12]]"))
    assert clean and len(chunks) == 3 and chunks[-1]["error"]["status"] == "UNAVAILABLE"


async def test_stats_and_api_key() -> None:
    async with await start_mock(
        options=MockOptions(models=MODELS, api_key="AIza-secret", strict_models=True)
    ) as guarded:
        async with aiohttp.ClientSession() as http:
            url = f"{guarded.url}/v1beta/models/{MODEL}:generateContent"
            async with http.post(url, json=body("x"), headers={"x-goog-api-key": "wrong"}) as response:
                error = (await response.json())["error"]
            assert (
                response.status == 400 and error["status"] == "INVALID_ARGUMENT"
            )  # Google's answer to a bad key
            assert error["details"][0]["reason"] == "API_KEY_INVALID"
            async with http.post(url, json=body("x"), headers={"x-goog-api-key": "AIza-secret"}) as response:
                assert response.status == 200
            async with http.post(url + "?key=AIza-secret", json=body("x")) as response:
                assert response.status == 200
            async with http.post(
                url.replace(MODEL, "gemini-0"), json=body("x"), headers={"x-goog-api-key": "AIza-secret"}
            ) as response:
                assert (
                    response.status == 404
                    and "models/gemini-0 is not found" in (await response.json())["error"]["message"]
                )
        sdk = genai.Client(api_key="AIza-secret", http_options=gtypes.HttpOptions(base_url=guarded.url))
        await sdk.aio.models.generate_content(model=MODEL, contents="hi")
        await sdk.aio.aclose()
        assert guarded.stats() == {
            "requests": 5,
            "by_path": {f"/v1beta/models/{MODEL}:generateContent": 3,
                        "/v1beta/models/gemini-0:generateContent": 1,
                        f"/v1/models/{MODEL}:generateContent": 1},
            "by_model": {MODEL: 4, "gemini-0": 1},
        }  # fmt: skip


async def test_embeddings_through_the_sdk(
    client: genai.Client, mock: RunningMock, http: aiohttp.ClientSession
) -> None:
    """google-genai sends batchEmbedContents for a list and parses the answer with its own types."""
    got = await client.aio.models.embed_content(
        model="text-embedding-004",
        contents=["alpha", "beta"],
        config=gtypes.EmbedContentConfig(output_dimensionality=8),
    )
    assert got.embeddings is not None and len(got.embeddings) == 2
    assert got.embeddings[0].values == list(content.embedding("alpha", 8))
    assert got.embeddings[1].values == list(content.embedding("beta", 8))
    one = await client.aio.models.embed_content(model="text-embedding-004", contents="alpha")
    assert one.embeddings is not None and len(one.embeddings[0].values or []) == 768

    url = f"{mock.url}/v1beta/models/text-embedding-004"
    single = {"content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 4}
    async with http.post(f"{url}:embedContent", json=single, headers=HEADERS) as r:
        assert r.status == 200 and (await r.json())["embedding"]["values"] == list(
            content.embedding("alpha", 4)
        )
    wrong_model = {"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}
    async with http.post(f"{url}:batchEmbedContents", json=wrong_model, headers=HEADERS) as r:
        assert r.status == 400 and (await r.json())["error"]["status"] == "INVALID_ARGUMENT"
    unknown_field = {
        "requests": [
            {"model": "models/text-embedding-004", "content": {"parts": [{"text": "x"}]}, "dimensions": 4}
        ]
    }
    async with http.post(f"{url}:batchEmbedContents", json=unknown_field, headers=HEADERS) as r:
        assert r.status == 400 and "Unknown name" in (await r.json())["error"]["message"]

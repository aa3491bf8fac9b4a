"""OpenAI clients served by Gemini: OpenAI request → ``generateContent`` body, Gemini response and
``streamGenerateContent?alt=sse`` stream → OpenAI response and chunks.

Goldens in ``tests/golden/translate/gemini/upstream`` (``TOLLWAY_UPDATE_GOLDEN=1`` rewrites the expected
side). Every body produced is validated piece by piece against the ``google-genai`` SDK's wire
types, which forbid unknown fields, and every response and chunk against the ``openai`` SDK's.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import orjson
import pydantic
import pytest
from google.genai import types as gtypes
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tollway.call import Usage
from tollway.errors import StreamInterrupted, TranslationError, UpstreamError
from tollway.sse import DONE, SSEDecoder, encode_json
from tollway.translate.errors import gemini_chunk_error, upstream_error
from tollway.translate.gemini.embeddings import gemini_to_openai_embeddings, openai_to_gemini_embed_request
from tollway.translate.gemini.schema import gemini_schema
from tollway.translate.gemini.upstream_request import PLACEHOLDER_SIGNATURE, openai_to_gemini_request
from tollway.translate.gemini.upstream_response import GeminiToOpenAIStream, gemini_to_openai_response
from tollway.usage import usage_from_gemini

GOLDEN = Path(__file__).parent / "golden" / "translate" / "gemini" / "upstream"
UPDATE = os.environ.get("TOLLWAY_UPDATE_GOLDEN") == "1"
CREATED = 1_700_000_000
BODY_TYPES: dict[str, type[pydantic.BaseModel]] = {
    "contents": gtypes.Content,
    "systemInstruction": gtypes.Content,
    "tools": gtypes.Tool,
    "toolConfig": gtypes.ToolConfig,
    "generationConfig": gtypes.GenerationConfig,
}


def _cases(folder: str, pattern: str) -> list[Path]:
    return sorted((GOLDEN / folder).glob(pattern))


def _check_json(path: Path, case: dict[str, Any], actual: Any) -> None:
    if UPDATE:
        case["expected"] = actual
        path.write_bytes(orjson.dumps(case, option=orjson.OPT_INDENT_2) + b"\n")
    assert case["expected"] is not None, f"{path.name}: no expected output (run with TOLLWAY_UPDATE_GOLDEN=1)"
    assert actual == case["expected"]


def validate_gemini_body(body: dict[str, Any]) -> None:
    assert set(body) <= set(BODY_TYPES)
    for key, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            BODY_TYPES[key].model_validate(item)


def _chunks(path: Path) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [orjson.loads(event.data) for event in decoder.feed(path.read_bytes()) + decoder.close()]


def run_stream(
    path: Path, *, include_usage: bool = True
) -> tuple[list[dict[str, Any]], GeminiToOpenAIStream]:
    machine = GeminiToOpenAIStream(
        model="gpt-4o", request_id="chatcmpl-g1", include_usage=include_usage, created=CREATED
    )
    out: list[dict[str, Any]] = []
    try:
        for data in _chunks(path):
            out += machine.feed(data)
        out += machine.finish()
    except (UpstreamError, StreamInterrupted) as exc:
        out.append(
            {
                "raised": type(exc).__name__,
                "status": exc.status,
                "message": exc.message,
                "openai": exc.openai_envelope(),
                "anthropic": exc.anthropic_envelope(),
            }
        )
    return out, machine


def openai_sdk_stream(chunks: list[dict[str, Any]]) -> ChatCompletion:
    body = b"".join(encode_json(chunk) for chunk in chunks) + DONE
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    client = openai.OpenAI(
        api_key="sk-test", base_url="http://upstream.test/v1", http_client=httpx.Client(transport=transport)
    )
    with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for _ in stream:
            pass
        return stream.get_final_completion()


# --- goldens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("requests", "*.json"), ids=lambda p: p.stem)
def test_request_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    actual = openai_to_gemini_request(case["input"], case["upstream_model"], **case["kwargs"])
    _check_json(path, case, actual)
    validate_gemini_body(actual)


@pytest.mark.parametrize("path", _cases("responses", "*.json"), ids=lambda p: p.stem)
def test_response_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    gtypes.GenerateContentResponse.model_validate(case["input"])  # the recording itself is well formed
    actual = gemini_to_openai_response(
        case["input"], model="gpt-4o", request_id="chatcmpl-g1", created=CREATED
    )
    _check_json(path, case, actual)
    ChatCompletion.model_validate(actual)


@pytest.mark.parametrize("path", _cases("streams", "*.sse"), ids=lambda p: p.stem)
def test_stream_golden(path: Path) -> None:
    chunks, _ = run_stream(path)
    expected_path = path.with_suffix(".expected.jsonl")
    if UPDATE:
        expected_path.write_bytes(b"".join(orjson.dumps(chunk) + b"\n" for chunk in chunks))
    expected = [orjson.loads(line) for line in expected_path.read_bytes().splitlines() if line.strip()]
    assert chunks == expected
    for chunk in chunks:
        if "raised" not in chunk:
            ChatCompletionChunk.model_validate(chunk)


# --- the traps, by name -----------------------------------------------------------------------


def test_whole_function_calls_get_their_own_index_and_id() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "parallel_function_calls.sse")
    final = openai_sdk_stream(chunks)
    message = final.choices[0].message
    assert message.content == "Checking both."
    calls = [c for c in message.tool_calls or [] if c.type == "function"]
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [c.function.arguments for c in calls] == ['{"city":"Paris"}', "{}"]
    ids = [c.id for c in calls]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)
    assert final.choices[0].finish_reason == "tool_calls"


def test_thought_signature_survives_the_round_trip() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "parallel_function_calls.sse")
    message = openai_sdk_stream(chunks).choices[0].message.model_dump(exclude_none=True)
    assert message["tool_calls"][0]["extra_content"] == {
        "google": {"thought_signature": "CiwBjz1rX4tmYy1zaWctMQ=="}
    }
    body = {
        "messages": [
            {"role": "user", "content": "Weather and time?"},
            message,
            {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18C"},
            {"role": "tool", "tool_call_id": message["tool_calls"][1]["id"], "content": "14:05"},
        ]
    }
    request = openai_to_gemini_request(body, "gemini-3-pro-preview")
    model_turn, results = request["contents"][1], request["contents"][2]
    assert model_turn["parts"][1] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": "CiwBjz1rX4tmYy1zaWctMQ==",
    }
    assert "thoughtSignature" not in model_turn["parts"][2]
    assert [p["functionResponse"]["name"] for p in results["parts"]] == ["get_weather", "get_time"]
    validate_gemini_body(request)


def test_text_signature_survives_the_round_trip() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "text_with_thoughts.sse")
    message = openai_sdk_stream(chunks).choices[0].message.model_dump(exclude_none=True)
    assert message["content"] == "The sum is 4."
    assert message["reasoning_content"] == "**Adding** the numbers"
    assert message["extra_content"] == {"google": {"thought_signature": "CiwBtXRleHQtc2ln"}}
    request = openai_to_gemini_request(
        {"messages": [{"role": "user", "content": "2+2"}, message]}, "gemini-2.5-flash"
    )
    assert request["contents"][1]["parts"] == [
        {"text": "The sum is 4.", "thoughtSignature": "CiwBtXRleHQtc2ln"}
    ]


def test_history_without_signatures_gets_the_placeholder_once_per_turn() -> None:
    case = orjson.loads((GOLDEN / "requests" / "tool_history_without_signatures.json").read_bytes())
    parts = case["expected"]["contents"][1]["parts"]
    signed = [p.get("thoughtSignature") for p in parts if "functionCall" in p]
    assert signed == [PLACEHOLDER_SIGNATURE, None]


def test_usage_counts_thoughts_as_output_and_cached_as_input() -> None:
    _, machine = run_stream(GOLDEN / "streams" / "text_with_thoughts.sse")
    assert machine.usage == Usage(
        input_tokens=1200, cached_tokens=1024, output_tokens=140, reasoning_tokens=100
    )
    assert usage_from_gemini(
        {"promptTokenCount": 10, "toolUsePromptTokenCount": 5, "candidatesTokenCount": 2}
    ) == Usage(input_tokens=15, output_tokens=2)


def test_max_tokens_finishes_as_length() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "max_tokens.sse")
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_without_finish_reason_is_interrupted() -> None:
    machine = GeminiToOpenAIStream(model="m", request_id="r", include_usage=False)
    machine.feed(_chunks(GOLDEN / "streams" / "max_tokens.sse")[0])
    with pytest.raises(StreamInterrupted):
        machine.finish()
    with pytest.raises(StreamInterrupted):
        GeminiToOpenAIStream(model="m", request_id="r", include_usage=False).finish()


def test_error_chunk_mid_stream_raises() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "error_midstream.sse")
    assert chunks[-1]["raised"] == "UpstreamError"
    assert chunks[-1]["status"] == 503
    error = gemini_chunk_error({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    assert error.retryable


def test_stream_ends_properly_without_a_sentinel_and_without_usage() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "text_with_thoughts.sse", include_usage=False)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


def test_n_maps_to_candidate_count_and_candidates_to_choices() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "n": 3}
    assert openai_to_gemini_request(body, "gemini-2.5-flash")["generationConfig"]["candidateCount"] == 3
    case = orjson.loads((GOLDEN / "responses" / "two_candidates.json").read_bytes())
    assert [c["message"]["content"] for c in case["expected"]["choices"]] == ["Red", "Blue"]


def test_schema_sanitizer() -> None:
    assert gemini_schema({"type": ["string", "null"], "format": "uri"}) == {
        "type": "STRING",
        "nullable": True,
    }
    assert gemini_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]}) == {
        "anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]
    }
    assert gemini_schema(
        {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}}], "description": "d"}
    ) == {"description": "d", "type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
    recursive = {
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
        "$ref": "#/$defs/Node",
    }
    assert "properties" in gemini_schema(recursive)
    assert gemini_schema({"type": "array"}) == {"type": "ARRAY", "items": {"type": "STRING"}}
    assert gemini_schema({"enum": ["a", "b"]}) == {"enum": ["a", "b"], "type": "STRING"}
    assert gemini_schema(None) == {"type": "OBJECT"}


def test_gemini_error_envelopes() -> None:
    body = (
        b'[{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",'
        b' "status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",'
        b' "retryDelay": "37s"}]}}]'
    )
    error = upstream_error("gemini", 429, body)
    assert (error.status, error.code, error.retry_after) == (429, "RESOURCE_EXHAUSTED", 37.0)
    assert error.anthropic_envelope()["error"]["type"] == "rate_limit_error"
    too_long = upstream_error(
        "gemini",
        400,
        b'{"error": {"code": 400, "message": "The input token count (1200000)'
        b' exceeds the maximum number of tokens allowed (1048576).",'
        b' "status": "INVALID_ARGUMENT"}}',
    )
    assert too_long.code == "context_length_exceeded"
    unavailable = upstream_error(
        "gemini",
        503,
        b'{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}',
    )
    assert unavailable.retryable and unavailable.message == "The model is overloaded."


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_request() -> None:
    assert openai_to_gemini_embed_request(
        {"model": "emb", "input": "hello", "user": "u1"}, "text-embedding-004"
    ) == {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}}]}
    both = openai_to_gemini_embed_request({"input": ["a", "b"], "dimensions": 256}, "m")
    assert [r["content"]["parts"][0]["text"] for r in both["requests"]] == ["a", "b"]
    assert all(r["outputDimensionality"] == 256 and r["model"] == "models/m" for r in both["requests"])
    for tokens in ([1, 2, 3], [[1, 2], [3]]):
        with pytest.raises(TranslationError) as info:
            openai_to_gemini_embed_request({"input": tokens}, "m")
        assert info.value.param == "input" and info.value.status == 400
    with pytest.raises(TranslationError):
        openai_to_gemini_embed_request({"input": "a", "dimensions": 0}, "m")


def test_embeddings_response() -> None:
    raw = b'{"embeddings": [{"values": [0.5, -0.25]}, {"values": [1, 0.125]}]}'
    kw: dict[str, Any] = {"inputs": 2, "provider": "g", "model": "text-embedding-004", "prompt_tokens": 7}
    floats = gemini_to_openai_embeddings(raw, encoding_format=None, **kw)
    assert floats == {
        "object": "list",
        "model": "text-embedding-004",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -0.25]},
            {"object": "embedding", "index": 1, "embedding": [1, 0.125]},
        ],
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    packed = gemini_to_openai_embeddings(raw, encoding_format="base64", **kw)
    assert struct.unpack("<2f", base64.b64decode(packed["data"][1]["embedding"])) == (1.0, 0.125)
    for broken in (
        b"<html>",
        b'{"embeddings": [{"values": [0.5]}]}',
        b'{"embeddings": [{"values": ["x"]}, {}]}',
        b'{"error": {"code": 500}}',
    ):
        with pytest.raises(UpstreamError) as info:
            gemini_to_openai_embeddings(broken, encoding_format=None, **kw)
        assert info.value.status == 502 and info.value.retryable

"""OpenAI clients served by Claude: OpenAI request → Anthropic body, Anthropic response and stream →
OpenAI response and chunks.

Golden files live in ``tests/golden/translate/anthropic/upstream``: ``requests/*.json`` and
``responses/*.json`` hold ``input`` and ``expected``; ``streams/*.sse`` are Anthropic streams as
sent on the wire and ``*.expected.jsonl`` the OpenAI chunks they become (a last ``raised`` line when
the stream fails). ``TOLLWAY_UPDATE_GOLDEN=1 pytest`` rewrites the expected side; review the diff.
Beyond equality with the goldens, the tests below pin each known trap by name, and the official
``openai`` SDK must accept every response and accumulate every stream.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tollway.call import Usage
from tollway.errors import StreamInterrupted, TranslationError, UpstreamError, UpstreamUnavailable
from tollway.sse import DONE, SSEDecoder, encode_json
from tollway.translate.anthropic.upstream_request import openai_to_anthropic_request
from tollway.translate.anthropic.upstream_response import (
    JSON_TOOL,
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
)
from tollway.translate.errors import (
    anthropic_event_error,
    openai_stream_error,
    upstream_error,
)

GOLDEN = Path(__file__).parent / "golden" / "translate" / "anthropic" / "upstream"
UPDATE = os.environ.get("TOLLWAY_UPDATE_GOLDEN") == "1"
CREATED = 1_700_000_000


def _cases(folder: str, pattern: str) -> list[Path]:
    return sorted((GOLDEN / folder).glob(pattern))


def _check_json(path: Path, case: dict[str, Any], actual: Any) -> None:
    if UPDATE:
        case["expected"] = actual
        path.write_bytes(orjson.dumps(case, option=orjson.OPT_INDENT_2) + b"\n")
    assert case["expected"] is not None, f"{path.name}: no expected output (run with TOLLWAY_UPDATE_GOLDEN=1)"
    assert actual == case["expected"]


def _events(path: Path) -> list[tuple[str, dict[str, Any]]]:
    decoder = SSEDecoder()
    raw = decoder.feed(path.read_bytes()) + decoder.close()
    return [(event.event or "", orjson.loads(event.data)) for event in raw]


def run_stream(
    path: Path, *, include_usage: bool = True
) -> tuple[list[dict[str, Any]], AnthropicToOpenAIStream]:
    machine = AnthropicToOpenAIStream(
        model="gpt-4o", request_id="chatcmpl-test", include_usage=include_usage, created=CREATED
    )
    chunks: list[dict[str, Any]] = []
    try:
        for event, data in _events(path):
            chunks += machine.feed(event, data)
        chunks += machine.finish()
    except (UpstreamError, StreamInterrupted) as exc:
        chunks.append(
            {
                "raised": type(exc).__name__,
                "status": exc.status,
                "message": exc.message,
                "openai": exc.openai_envelope(),
                "anthropic": exc.anthropic_envelope(),
            }
        )
    return chunks, machine


def openai_sdk_stream(chunks: list[dict[str, Any]]) -> ChatCompletion:
    """Serve the chunks as an SSE body to the real OpenAI SDK and let its stream helper accumulate."""
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
    actual = openai_to_anthropic_request(case["input"], case["upstream_model"], **case["kwargs"])
    _check_json(path, case, actual)


@pytest.mark.parametrize("path", _cases("responses", "*.json"), ids=lambda p: p.stem)
def test_response_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    actual = anthropic_to_openai_response(
        case["input"], model="gpt-4o", request_id="chatcmpl-test", created=CREATED
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


def test_text_block_then_tool_use_is_tool_call_index_0() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "text_then_tool.sse")
    indices = {
        call["index"] for c in chunks for ch in c["choices"] for call in ch["delta"].get("tool_calls", [])
    }
    assert indices == {0}
    final = openai_sdk_stream(chunks)
    message = final.choices[0].message
    assert message.content == "Okay, let me check the weather."
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function"
    assert call.id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert orjson.loads(call.function.arguments) == {"city": "San Francisco", "unit": "f"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_usage_split_across_message_start_and_message_delta_is_combined() -> None:
    chunks, machine = run_stream(GOLDEN / "streams" / "text_then_tool.sse")
    assert machine.usage == Usage(
        input_tokens=472 + 2048 + 120, cached_tokens=2048, cache_write_tokens=120, output_tokens=89
    )
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 2640
    assert usage_chunk["usage"]["completion_tokens"] == 89
    assert usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 2048
    assert openai_sdk_stream(chunks).usage is not None


def test_no_argument_tool_is_empty_object_never_prefixed() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "parallel_tools_no_args.sse")
    fragments: dict[int, list[str]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls", []):
                fragments.setdefault(call["index"], []).append(call["function"].get("arguments", ""))
    assert "".join(fragments[0]) == "{}"
    assert "".join(fragments[1]) == '{"city": "Paris"}'
    assert not any(f.startswith("{}") and f != "{}" for f in fragments[1])
    calls = openai_sdk_stream(chunks).choices[0].message.tool_calls or []
    assert [c.function.arguments for c in calls if c.type == "function"] == ["{}", '{"city": "Paris"}']


def test_max_tokens_inside_tool_arguments_finishes_as_length() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "max_tokens_mid_tool.sse")
    with pytest.raises(openai.LengthFinishReasonError) as caught:  # the SDK's own reading of "length"
        openai_sdk_stream(chunks)
    assert caught.value.completion.choices[0].finish_reason == "length"
    response = anthropic_to_openai_response(
        {
            "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        },
        model="m",
        request_id="r",
    )
    assert response["choices"][0]["finish_reason"] == "length"


def test_pings_are_ignored_and_stream_ends_with_finish_chunk() -> None:
    machine = AnthropicToOpenAIStream(model="m", request_id="r", include_usage=False)
    assert machine.feed("ping", {"type": "ping"}) == []
    chunks, _ = run_stream(GOLDEN / "streams" / "text_then_tool.sse", include_usage=False)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in chunk for chunk in chunks)


def test_stream_cut_before_message_delta_is_interrupted() -> None:
    machine = AnthropicToOpenAIStream(model="m", request_id="r", include_usage=True)
    for event, data in _events(GOLDEN / "streams" / "text_then_tool.sse")[:5]:
        machine.feed(event, data)
    with pytest.raises(StreamInterrupted):
        machine.finish()


def test_error_event_mid_stream_raises_overloaded_upstream_error() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "error_overloaded.sse")
    assert chunks[-1]["raised"] == "UpstreamError"
    error = anthropic_event_error(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert error.status == 529
    assert error.retryable
    assert error.anthropic_envelope()["error"]["type"] == "overloaded_error"
    # what an OpenAI client is sent in its place; the SDK raises it
    body = encode_json(chunks[0]) + encode_json(openai_stream_error(error))
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    client = openai.OpenAI(
        api_key="sk-test", base_url="http://t/v1", http_client=httpx.Client(transport=transport)
    )
    with pytest.raises(openai.APIError, match="Overloaded"):
        for _ in client.chat.completions.create(model="m", messages=[], stream=True):
            pass


def test_thinking_signature_survives_the_round_trip() -> None:
    chunks, _ = run_stream(GOLDEN / "streams" / "thinking_signature.sse")
    final = openai_sdk_stream(chunks)
    message = final.choices[0].message.model_dump(exclude_none=True)
    assert message["content"] == "4"
    assert message["reasoning_content"] == "2 + 2 is a simple sum. It is 4."
    blocks = message["thinking_blocks"]
    assert blocks[0]["signature"] == "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds="
    assert blocks[1] == {"index": 1, "type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}
    # the client appends the message it got and asks again: the thinking goes back verbatim
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "2+2?"}, message, {"role": "user", "content": "Why?"}],
    }
    request = openai_to_anthropic_request(body, "claude-sonnet-4-5")
    assert request["messages"][1]["content"] == [
        {
            "type": "thinking",
            "thinking": "2 + 2 is a simple sum. It is 4.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds=",
        },
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "text", "text": "4"},
    ]


def test_json_schema_tool_comes_back_as_text() -> None:
    request = orjson.loads((GOLDEN / "requests" / "json_schema_forced_tool.json").read_bytes())["expected"]
    assert request["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    chunks, _ = run_stream(GOLDEN / "streams" / "json_tool.sse")
    final = openai_sdk_stream(chunks)
    assert orjson.loads(final.choices[0].message.content or "") == {"name": "Ann", "age": 31}
    assert final.choices[0].message.tool_calls in (None, [])
    assert final.choices[0].finish_reason == "stop"


def test_consecutive_tool_messages_become_one_user_turn() -> None:
    request = orjson.loads((GOLDEN / "requests" / "tool_round_trip.json").read_bytes())["expected"]
    roles = [m["role"] for m in request["messages"]]
    assert roles == ["user", "assistant", "user"]
    last = request["messages"][2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text"]
    assert request["messages"][1]["content"][2]["input"] == {}  # no-argument call: {} not ""


def test_tool_choice_and_parallel_mapping() -> None:
    def choice(**extra: Any) -> Any:
        body = {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            **extra,
        }
        return openai_to_anthropic_request(body, "claude").get("tool_choice")

    assert choice() is None
    assert choice(tool_choice="auto") == {"type": "auto"}
    assert choice(tool_choice="required") == {"type": "any"}
    assert choice(tool_choice="none") == {"type": "none"}
    assert choice(tool_choice={"type": "function", "function": {"name": "f"}}) == {
        "type": "tool",
        "name": "f",
    }
    assert choice(parallel_tool_calls=False) == {"type": "auto", "disable_parallel_tool_use": True}
    assert choice(tool_choice="required", parallel_tool_calls=False) == {
        "type": "any",
        "disable_parallel_tool_use": True,
    }


def test_n_greater_than_one_cannot_be_translated() -> None:
    with pytest.raises(TranslationError) as caught:
        openai_to_anthropic_request({"messages": [{"role": "user", "content": "x"}], "n": 2}, "claude")
    assert caught.value.status == 400
    assert caught.value.param == "n"


def test_audio_input_cannot_be_translated() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}],
            }
        ]
    }
    with pytest.raises(TranslationError):
        openai_to_anthropic_request(body, "claude")


def test_default_max_tokens_is_configurable() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    assert openai_to_anthropic_request(body, "claude", default_max_tokens=1000)["max_tokens"] == 1000


def test_sampling_can_be_dropped_for_models_that_refuse_it() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "temperature": 0.3, "top_k": 5}
    request = openai_to_anthropic_request(body, "claude", sampling=False)
    assert "temperature" not in request and "top_k" not in request


# --- errors -----------------------------------------------------------------------------------


def test_anthropic_error_envelopes() -> None:
    overloaded = upstream_error(
        "anthropic", 529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    )
    assert (overloaded.status, overloaded.message, overloaded.code) == (529, "Overloaded", "overloaded_error")
    assert overloaded.retryable
    assert overloaded.anthropic_envelope() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert overloaded.openai_envelope()["error"]["type"] == "api_error"

    too_long = upstream_error(
        "anthropic",
        400,
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"prompt is too long: 210000 tokens > 200000 maximum"}}',
    )
    assert too_long.code == "context_length_exceeded"
    assert not too_long.retryable

    limited = upstream_error(
        "anthropic",
        429,
        b'{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}',
        retry_after=12,
    )
    assert limited.retry_after == 12 and limited.type == "rate_limit_error"

    garbage = upstream_error("anthropic", 502, b"<html>Bad Gateway</html>")
    assert garbage.status == 502 and "Bad Gateway" in garbage.message


def test_openai_error_envelopes() -> None:
    error = upstream_error(
        "openai",
        429,
        b'{"error":{"message":"You exceeded your current quota",'
        b'"type":"insufficient_quota","param":null,"code":"insufficient_quota"}}',
    )
    assert error.code == "insufficient_quota" and error.status == 429
    assert error.anthropic_envelope()["error"]["type"] == "rate_limit_error"
    compat = upstream_error("openai", 500, b'{"error":"model crashed"}')
    assert compat.message == "model crashed"


def test_upstream_keys_never_reach_the_message() -> None:
    error = upstream_error(
        "openai",
        401,
        b'{"error":{"message":"Incorrect API key provided: sk-abcdef123456789",'
        b'"type":"invalid_request_error","code":"invalid_api_key"}}',
    )
    assert "sk-abcdef" not in error.message
    assert isinstance(UpstreamUnavailable("x"), Exception)

"""Anthropic clients served by an OpenAI-compatible upstream: Anthropic request → OpenAI body, OpenAI
response and stream → Anthropic response and stream events.

Goldens in ``tests/golden/translate/anthropic/client``: ``streams/*.sse`` are OpenAI streams as
sent on the wire, ``*.expected.sse`` the Anthropic event stream an Anthropic client receives (ending
in an ``error`` event when the upstream failed midway). ``TOLLWAY_UPDATE_GOLDEN=1`` rewrites the
expected side. Every produced stream is also checked event by event against the ``anthropic`` SDK's
types, replayed through the SDK's own stream accumulator, and checked for the event order the
Anthropic API keeps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from tollway.call import Usage
from tollway.errors import StreamInterrupted, TollwayError
from tollway.sse import SSEDecoder, encode_named
from tollway.translate.anthropic.client_request import anthropic_to_openai_request
from tollway.translate.anthropic.client_response import openai_to_anthropic_response
from tollway.translate.anthropic.client_stream import OpenAIToAnthropicStream
from tollway.translate.errors import anthropic_stream_error

GOLDEN = Path(__file__).parent / "golden" / "translate" / "anthropic" / "client"
UPDATE = os.environ.get("TOLLWAY_UPDATE_GOLDEN") == "1"
EVENT = TypeAdapter(RawMessageStreamEvent)


def _cases(folder: str, pattern: str) -> list[Path]:
    return sorted(p for p in (GOLDEN / folder).glob(pattern) if not p.name.endswith(".expected.sse"))


def _check_json(path: Path, case: dict[str, Any], actual: Any) -> None:
    if UPDATE:
        case["expected"] = actual
        path.write_bytes(orjson.dumps(case, option=orjson.OPT_INDENT_2) + b"\n")
    assert case["expected"] is not None, f"{path.name}: no expected output (run with TOLLWAY_UPDATE_GOLDEN=1)"
    assert actual == case["expected"]


def run_stream(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], OpenAIToAnthropicStream]:
    """Drive the machine as the gateway does: feed chunks, ``finish()`` on [DONE] or end of stream,
    and on an upstream failure send the client an ``error`` event."""
    machine = OpenAIToAnthropicStream(model="claude-sonnet-4-5")
    decoder = SSEDecoder()
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        for raw in decoder.feed(path.read_bytes()) + decoder.close():
            if raw.data == b"[DONE]":
                break
            events += machine.feed(orjson.loads(raw.data))
        events += machine.finish()
    except TollwayError as exc:
        events.append(anthropic_stream_error(exc))
    return events, machine


def encode(events: list[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(encode_named(name, data) for name, data in events)


def anthropic_sdk_stream(events: list[tuple[str, dict[str, Any]]]) -> Message:
    """Serve the events to the real Anthropic SDK and let its stream helper accumulate them."""
    body = encode(events)
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://gateway.test", http_client=httpx.Client(transport=transport)
    )
    with client.messages.stream(
        model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


def assert_anthropic_order(events: list[tuple[str, dict[str, Any]]]) -> None:
    """message_start, ping, whole blocks one at a time (start → deltas → stop, indices 0, 1, ...),
    one message_delta with a stop reason, message_stop."""
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_start") == names.count("message_delta") == names.count("message_stop") == 1
    assert events[-2][1]["delta"]["stop_reason"] is not None
    open_index: int | None = None
    next_index = 0
    for name, data in events[2:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
        else:
            raise AssertionError(f"unexpected {name} inside the message")
    assert open_index is None
    for name, data in events:
        if name != "ping":
            EVENT.validate_python(data)


# --- goldens ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("requests", "*.json"), ids=lambda p: p.stem)
def test_request_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    _check_json(path, case, anthropic_to_openai_request(case["input"], **case["kwargs"]))


@pytest.mark.parametrize("path", _cases("responses", "*.json"), ids=lambda p: p.stem)
def test_response_golden(path: Path) -> None:
    case = orjson.loads(path.read_bytes())
    actual = openai_to_anthropic_response(case["input"], model="claude-sonnet-4-5")
    _check_json(path, case, actual)
    Message.model_validate(actual)


@pytest.mark.parametrize("path", _cases("streams", "*.sse"), ids=lambda p: p.stem)
def test_stream_golden(path: Path) -> None:
    events, _ = run_stream(path)
    expected_path = path.with_suffix(".expected.sse")
    if UPDATE:
        expected_path.write_bytes(encode(events))
    assert encode(events) == expected_path.read_bytes()
    if events[-1][0] != "error":
        assert_anthropic_order(events)
        anthropic_sdk_stream(events)


# --- the traps, by name -----------------------------------------------------------------------


def test_interleaved_parallel_tool_calls_become_whole_sequential_blocks() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "interleaved_parallel_tools.sse")
    assert_anthropic_order(events)
    message = anthropic_sdk_stream(events)
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    first, second = message.content[1], message.content[2]
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.input) == ("call_p", {"city": "Paris"})
    assert (second.id, second.input) == ("call_r", {"city": "Rome"})
    assert message.stop_reason == "tool_use"


def test_no_argument_tool_input_is_empty_object() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "no_argument_tool.sse")
    assert not any(d.get("delta", {}).get("type") == "input_json_delta" for _, d in events)
    message = anthropic_sdk_stream(events)
    assert message.content[0].type == "tool_use" and message.content[0].input == {}


def test_length_inside_tool_arguments_is_max_tokens() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "length_mid_tool_arguments.sse")
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    assert anthropic_sdk_stream(events).stop_reason == "max_tokens"


def test_usage_arrives_in_message_delta_with_cache_split_out() -> None:
    events, machine = run_stream(GOLDEN / "streams" / "text.sse")
    assert events[-2][1]["usage"] == {
        "input_tokens": 388,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 512,
        "output_tokens": 60,
    }
    assert machine.usage == Usage(input_tokens=900, cached_tokens=512, output_tokens=60)
    usage = anthropic_sdk_stream(events).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (388, 512, 60)


def test_reasoning_becomes_a_thinking_block() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "reasoning_then_text.sse")
    message = anthropic_sdk_stream(events)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking == "The user greets me."
    hidden = OpenAIToAnthropicStream(model="m", include_thinking=False)
    decoder = SSEDecoder()
    names = []
    for raw in decoder.feed((GOLDEN / "streams" / "reasoning_then_text.sse").read_bytes()):
        if raw.data != b"[DONE]":
            names += [
                data.get("content_block", {}).get("type") for _, data in hidden.feed(orjson.loads(raw.data))
            ]
    assert "thinking" not in names


def test_stop_after_tool_calls_and_missing_done_still_end_properly() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "stop_after_tool_calls_without_done.sse")
    message = anthropic_sdk_stream(events)
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "tool_use" and message.content[0].id == "functions_get_time_0"


def test_upstream_error_mid_stream_reaches_the_sdk_as_an_error() -> None:
    events, _ = run_stream(GOLDEN / "streams" / "error_midstream.sse")
    assert events[-1] == (
        "error",
        {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "The server had an error while processing your request.",
            },
        },
    )
    with pytest.raises(anthropic.APIStatusError, match="server had an error"):
        anthropic_sdk_stream(events)


def test_stream_that_never_finishes_is_interrupted() -> None:
    machine = OpenAIToAnthropicStream(model="m")
    machine.feed({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]})
    with pytest.raises(StreamInterrupted):
        machine.finish()
    with pytest.raises(StreamInterrupted):
        OpenAIToAnthropicStream(model="m").finish()


def test_tool_results_come_right_after_the_tool_calls() -> None:
    case = orjson.loads((GOLDEN / "requests" / "tool_loop.json").read_bytes())
    roles = [m["role"] for m in case["expected"]["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "user"]


def test_upstreams_that_omit_tool_call_indices() -> None:
    machine = OpenAIToAnthropicStream(model="m")
    events: list[tuple[str, dict[str, Any]]] = []
    for delta in (
        {"tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":'}}]},
        {"tool_calls": [{"function": {"arguments": "1}"}}]},
        {"tool_calls": [{"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
    ):
        events += machine.feed({"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    events += machine.feed({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    events += machine.finish()
    message = anthropic_sdk_stream(events)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == [
        ("f", {"x": 1}),
        ("g", {}),
    ]

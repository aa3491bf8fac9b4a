"""Every usage reader against the others, on the same objects: the log (what the provider reads), the
price and the response a client of another protocol receives give one answer for one usage object.

The case that once disagreed: a DeepSeek answer reports its cache hits as ``prompt_cache_hit_tokens``
(and, through some routers, cache writes as ``prompt_tokens_details.cache_write_tokens``). The
provider logged 60 cached tokens and no writes while the Anthropic response built from the same
answer said 0 cached and 7 written."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from tollway.call import Usage
from tollway.config import ProviderConfig
from tollway.providers.openai import OpenAICompatible
from tollway.translate.anthropic.client_response import openai_to_anthropic_response
from tollway.translate.anthropic.client_stream import OpenAIToAnthropicStream
from tollway.translate.anthropic.upstream_response import (
    AnthropicToOpenAIStream,
    anthropic_to_openai_response,
)
from tollway.translate.gemini.upstream_response import gemini_to_openai_response
from tollway.usage import (
    WireUsage,
    merge_anthropic_usage,
    usage_from_anthropic,
    usage_from_gemini,
    usage_from_openai,
    usage_to_anthropic,
    usage_to_openai,
)

UPSTREAM = OpenAICompatible(ProviderConfig(name="up", base_url="http://127.0.0.1:9/v1", api_key="k"))

DEEPSEEK: dict[str, Any] = {
    "prompt_tokens": 100,
    "completion_tokens": 5,
    "total_tokens": 105,
    "prompt_cache_hit_tokens": 60,
    "prompt_cache_miss_tokens": 40,
    "prompt_tokens_details": {"cache_write_tokens": 7},
}

OPENAI_USAGES: list[dict[str, Any]] = [
    {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 800, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 200},
    },
    DEEPSEEK,
    {  # DeepSeek as it reports today: both fields, the same count
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 60,
        "prompt_cache_miss_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 60},
    },
    {  # what tollway writes for an Anthropic upstream's cache activity
        "prompt_tokens": 2640,
        "completion_tokens": 89,
        "prompt_tokens_details": {"cached_tokens": 2048, "cache_write_tokens": 120},
    },
    {"prompt_tokens": 7, "completion_tokens": 1, "prompt_tokens_details": None},
    {},
]

ANTHROPIC_USAGES: list[dict[str, Any]] = [
    {"input_tokens": 10, "output_tokens": 3},
    {
        "input_tokens": 472,
        "cache_read_input_tokens": 2048,
        "cache_creation_input_tokens": 120,
        "output_tokens": 89,
    },
]

GEMINI_USAGES: list[dict[str, Any]] = [
    {"promptTokenCount": 10, "candidatesTokenCount": 4, "totalTokenCount": 14},
    {
        "promptTokenCount": 300,
        "cachedContentTokenCount": 200,
        "candidatesTokenCount": 40,
        "thoughtsTokenCount": 25,
        "toolUsePromptTokenCount": 12,
    },
]


def answer(usage: Any) -> bytes:
    message = {"role": "assistant", "content": "hi"}
    choices = [{"index": 0, "message": message, "finish_reason": "stop"}]
    return orjson.dumps({"id": "c1", "object": "chat.completion", "choices": choices, "usage": usage})


def without_reasoning(usage: Usage) -> Usage:
    """Anthropic's usage has no reasoning count (thinking is inside its output tokens)."""
    return Usage(usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.output_tokens)


def test_deepseek_cache_counts() -> None:
    assert usage_from_openai(DEEPSEEK) == Usage(100, 60, 7, 5, 0)


@pytest.mark.parametrize("usage", OPENAI_USAGES)
def test_the_wire_reader_reads_what_the_dict_reader_reads(usage: dict[str, Any]) -> None:
    assert msgspec.json.decode(orjson.dumps(usage), type=WireUsage).tokens() == usage_from_openai(usage)


@pytest.mark.parametrize("usage", OPENAI_USAGES)
def test_an_anthropic_client_is_told_what_the_log_records(usage: dict[str, Any]) -> None:
    """An Anthropic client served by an OpenAI-compatible upstream: the provider's reading (the log
    row and the price) and the translated response's usage, whole answer and stream."""
    raw = answer(usage)
    logged = UPSTREAM._usage_of(raw)
    assert logged is not None and logged == usage_from_openai(orjson.loads(raw)["usage"])
    response = openai_to_anthropic_response(orjson.loads(raw), model="claude")
    assert usage_from_anthropic(response["usage"]) == without_reasoning(logged)

    stream = OpenAIToAnthropicStream(model="claude")
    stream.feed({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]})
    stream.feed({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    stream.feed({"id": "c1", "choices": [], "usage": usage})
    (delta,) = [data for name, data in stream.finish() if name == "message_delta"]
    assert stream.usage == logged
    assert usage_from_anthropic(delta["usage"]) == without_reasoning(logged)


@pytest.mark.parametrize("usage", ANTHROPIC_USAGES)
def test_an_openai_client_is_told_what_the_log_records(usage: dict[str, Any]) -> None:
    """An OpenAI client served by Anthropic: the provider reads the upstream's usage for the log;
    the translated answer's usage, read back as an OpenAI usage, is the same."""
    logged = usage_from_anthropic(usage)
    body = {"id": "msg_1", "type": "message", "content": [{"type": "text", "text": "hi"}], "usage": usage}
    translated = anthropic_to_openai_response(body, model="claude", request_id="r1")
    assert usage_from_openai(translated["usage"]) == logged

    stream = AnthropicToOpenAIStream(model="claude", request_id="r1", include_usage=True)
    start = {k: v for k, v in usage.items() if k != "output_tokens"} | {"output_tokens": 1}
    stream.feed("message_start", {"type": "message_start", "message": {"id": "msg_1", "usage": start}})
    stream.feed("message_delta", {"type": "message_delta", "delta": {}, "usage": usage})
    chunks = stream.feed("message_stop", {"type": "message_stop"}) + stream.finish()
    (usage_chunk,) = [c for c in chunks if c.get("usage")]
    assert stream.usage == logged and usage_from_openai(usage_chunk["usage"]) == logged


def test_merged_anthropic_stream_usage() -> None:
    merged = {"input_tokens": 472, "cache_read_input_tokens": 2048, "output_tokens": 1}
    merge_anthropic_usage(merged, {"output_tokens": 89, "cache_read_input_tokens": None})
    assert usage_from_anthropic(merged) == Usage(2520, 2048, 0, 89, 0)


@pytest.mark.parametrize("usage", GEMINI_USAGES)
def test_gemini_usage_reads_back_the_same(usage: dict[str, Any]) -> None:
    logged = usage_from_gemini(usage)
    body = {"candidates": [{"content": {"parts": [{"text": "hi"}]}}], "usageMetadata": usage}
    translated = gemini_to_openai_response(body, model="gemini", request_id="r1")
    assert usage_from_openai(translated["usage"]) == logged


@pytest.mark.parametrize(
    "usage", [Usage(100, 60, 7, 5, 0), Usage(1000, 800, 0, 500, 200), Usage(3, 0, 0, 0, 0), Usage()]
)
def test_writers_and_readers_round_trip(usage: Usage) -> None:
    assert usage_from_openai(usage_to_openai(usage)) == usage
    assert usage_from_anthropic(usage_to_anthropic(usage)) == without_reasoning(usage)


def test_odd_types_are_read_leniently_and_the_same_everywhere() -> None:
    odd = {"prompt_tokens": "12", "completion_tokens": 3.0, "prompt_cache_hit_tokens": True}
    assert usage_from_openai(odd) == Usage(12, 0, 0, 3, 0)
    assert UPSTREAM._usage_of(answer(odd)) == Usage(12, 0, 0, 3, 0)
    assert usage_from_anthropic({"input_tokens": "5", "output_tokens": None}) == Usage(5, 0, 0, 0, 0)
    assert usage_from_openai(None) is None and usage_from_openai([1]) is None

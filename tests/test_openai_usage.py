"""Reading an OpenAI-compatible answer's usage without parsing all of it: every shape gives what the
full parse gives (the usage, or the upstream error raised), so the shortcut changes nothing but cost."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.call import Usage
from tollway.config import ProviderConfig
from tollway.errors import UpstreamError
from tollway.providers.openai import OpenAICompatible
from tollway.usage import usage_from_openai

UPSTREAM = OpenAICompatible(ProviderConfig(name="up", base_url="http://127.0.0.1:9/v1", api_key="k"))
CHOICES: list[Any] = [
    {"index": 0, "message": {"role": "assistant", "content": "usage"}, "finish_reason": "stop"}
]


def answer(**members: Any) -> bytes:
    return orjson.dumps({"id": "c1", "object": "chat.completion", "choices": CHOICES, **members})


USAGES: list[Any] = [
    {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 200, "audio_tokens": 0},
    },
    {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 60,
        "prompt_cache_miss_tokens": 40,
    },
    {
        "prompt_tokens": 7,
        "completion_tokens": 1,
        "prompt_tokens_details": None,
        "completion_tokens_details": {},
    },
    {"prompt_tokens": "12", "completion_tokens": 3.0},  # odd types: the full parse reads them
    {"prompt_tokens": 5, "prompt_tokens_details": ["not", "an", "object"]},
    {},
    None,
    5,
]


@pytest.mark.parametrize("usage", USAGES)
def test_the_shortcut_reads_what_the_full_parse_reads(usage: Any) -> None:
    raw = answer(usage=usage)
    assert UPSTREAM._usage_of(raw) == usage_from_openai(orjson.loads(raw).get("usage"))


def test_values() -> None:
    assert UPSTREAM._usage_of(answer(usage=USAGES[1])) == Usage(1000, 800, 0, 500, 200)
    assert UPSTREAM._usage_of(answer(usage=USAGES[2])) == Usage(100, 60, 0, 5, 0)
    assert UPSTREAM._usage_of(answer()) is None  # no usage at all


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>502 Bad Gateway</html>",
        answer(usage=USAGES[0])[:-3],  # cut short
        answer(usage=USAGES[0]).replace(b'"choices":[', b'"choices":[}'),  # broken before the usage
        b'[{"usage": {"prompt_tokens": 1}}]',  # not an object
        orjson.dumps({"error": {"message": "overloaded", "type": "server_error"}}),
        orjson.dumps({"error": None, "usage": USAGES[0]}),
        orjson.dumps({"error": "rate limited"}),
    ],
)
def test_what_is_not_an_answer_is_still_an_upstream_error(raw: bytes) -> None:
    """The same error the full parse raises: not JSON or not an object is a 502 (failover); an
    ``error`` member is the upstream's own error, read from its envelope."""
    with pytest.raises(UpstreamError) as full:
        UPSTREAM._parse(raw)
    with pytest.raises(UpstreamError) as info:
        UPSTREAM._usage_of(raw)
    assert (info.value.status, info.value.message, info.value.retryable) == (
        full.value.status,
        full.value.message,
        full.value.retryable,
    )
    if b"error" not in raw:
        assert info.value.status == 502 and info.value.retryable

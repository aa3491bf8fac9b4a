"""Token usage of every wire format, read into tollway's ``Usage`` and written back out: the one
place that knows what each vendor's counts mean, so the log, the price and the client's response
all give one answer for one usage object.

``Usage`` counts the way OpenAI reports and bills: ``input_tokens`` includes cached and
cache-write tokens, ``output_tokens`` includes reasoning tokens. The other formats split
differently, and getting that wrong skews every cost figure:

- OpenAI-compatible vendors put cache hits in ``prompt_tokens_details.cached_tokens``, DeepSeek in
  ``prompt_cache_hit_tokens`` (both inside ``prompt_tokens``); cache writes, when reported, are
  ``prompt_tokens_details.cache_write_tokens`` (tollway writes them there for Anthropic upstreams).
- Anthropic's ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; its ``output_tokens`` already include thinking.
- Gemini's ``promptTokenCount`` includes ``cachedContentTokenCount``, but ``thoughtsTokenCount``
  is outside ``candidatesTokenCount``, and ``toolUsePromptTokenCount`` (tokens of server-side tool
  results fed back to the model, billed as input) is outside ``promptTokenCount``.

Counts of an odd type are read leniently (``"12"`` and ``12.0`` are 12; anything else is 0): a
vendor's formatting quirk should not lose a call's price. ``WireUsage`` is the OpenAI reader for
answers passed through untouched, decoded by msgspec without building the rest of the answer;
``tokens()`` gives exactly what ``usage_from_openai`` gives (tests/test_usage.py holds them to it).
"""

from __future__ import annotations

from typing import Any

import msgspec

from tollway.call import Usage


def _count(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, dict) else {}


# -- OpenAI and compatible vendors ----------------------------------------------------------------


def usage_from_openai(usage: Any) -> Usage | None:
    """An OpenAI-compatible ``usage`` object (chat completion, embeddings or stream usage chunk);
    None when there is none (not an object)."""
    if not isinstance(usage, dict):
        return None
    prompt = _details(usage, "prompt_tokens_details")
    completion = _details(usage, "completion_tokens_details")
    return Usage(
        input_tokens=_count(usage.get("prompt_tokens")),
        cached_tokens=_count(prompt.get("cached_tokens")) or _count(usage.get("prompt_cache_hit_tokens")),
        cache_write_tokens=_count(prompt.get("cache_write_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        reasoning_tokens=_count(completion.get("reasoning_tokens")),
    )


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class WireUsage(msgspec.Struct):
    """An OpenAI-compatible ``usage`` as msgspec decodes it: the members ``usage_from_openai`` reads;
    other members are skipped, a member of another type fails the decode (the caller then takes the
    full parse, which reads odd types leniently)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    prompt_cache_hit_tokens: int | None = None

    def tokens(self) -> Usage:
        """What ``usage_from_openai`` makes of the same object."""
        prompt = self.prompt_tokens_details
        cached = (prompt.cached_tokens if prompt else None) or self.prompt_cache_hit_tokens or 0
        written = (prompt.cache_write_tokens if prompt else None) or 0
        done = self.completion_tokens_details
        reasoning = (done.reasoning_tokens if done else None) or 0
        return Usage(self.prompt_tokens or 0, cached, written, self.completion_tokens or 0, reasoning)


def usage_to_openai(usage: Usage) -> dict[str, Any]:
    """The OpenAI ``usage`` object a client of the OpenAI protocol expects."""
    prompt_details: dict[str, Any] = {"cached_tokens": usage.cached_tokens}
    if usage.cache_write_tokens:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


# -- Anthropic ------------------------------------------------------------------------------------


def usage_from_anthropic(usage: dict[str, Any]) -> Usage:
    """An Anthropic ``usage`` object; for a stream, the merge of message_start's and message_delta's."""
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_count(usage.get("input_tokens")) + cache_read + cache_write,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=_count(usage.get("output_tokens")),
        reasoning_tokens=_count(_details(usage, "output_tokens_details").get("thinking_tokens")),
    )


def merge_anthropic_usage(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Fold a later usage object into an earlier one. Anthropic's stream counts are cumulative:
    a field present in ``message_delta`` replaces the ``message_start`` value, an absent one keeps it."""
    for key, value in update.items():
        if value is not None:
            into[key] = value


def usage_to_anthropic(usage: Usage) -> dict[str, Any]:
    """The Anthropic ``usage`` object: input excludes cache reads and writes."""
    uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }


# -- Gemini ---------------------------------------------------------------------------------------


def usage_from_gemini(usage: dict[str, Any]) -> Usage:
    """A Gemini ``usageMetadata`` object."""
    thoughts = _count(usage.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_count(usage.get("promptTokenCount")) + _count(usage.get("toolUsePromptTokenCount")),
        cached_tokens=_count(usage.get("cachedContentTokenCount")),
        output_tokens=_count(usage.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
    )

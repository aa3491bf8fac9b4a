"""Token usage of each wire format, read into tollway's ``Usage`` and written back out.

``Usage`` counts the way OpenAI reports and bills: ``input_tokens`` includes cached and
cache-write tokens, ``output_tokens`` includes reasoning tokens. The other formats split
differently, and getting that wrong skews every cost figure:

- Anthropic's ``input_tokens`` EXCLUDES ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; its ``output_tokens`` already include thinking.
- Gemini's ``promptTokenCount`` includes ``cachedContentTokenCount``, but ``thoughtsTokenCount``
  is outside ``candidatesTokenCount``, and ``toolUsePromptTokenCount`` (tokens of server-side tool
  results fed back to the model, billed as input) is outside ``promptTokenCount``.
"""

from __future__ import annotations

from typing import Any

from tollway.call import Usage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _details(usage: dict[str, Any], key: str) -> dict[str, Any]:
    value = usage.get(key)
    return value if isinstance(value, dict) else {}


def usage_from_openai(usage: dict[str, Any]) -> Usage:
    """An OpenAI ``usage`` object (chat completion or stream usage chunk)."""
    prompt = _details(usage, "prompt_tokens_details")
    completion = _details(usage, "completion_tokens_details")
    return Usage(
        input_tokens=_int(usage.get("prompt_tokens")),
        cached_tokens=_int(prompt.get("cached_tokens")),
        cache_write_tokens=_int(prompt.get("cache_write_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        reasoning_tokens=_int(completion.get("reasoning_tokens")),
    )


def usage_from_anthropic(usage: dict[str, Any]) -> Usage:
    """An Anthropic ``usage`` object; for a stream, the merge of message_start's and message_delta's."""
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=_int(usage.get("input_tokens")) + cache_read + cache_write,
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(_details(usage, "output_tokens_details").get("thinking_tokens")),
    )


def merge_anthropic_usage(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Fold a later usage object into an earlier one. Anthropic's stream counts are cumulative:
    a field present in ``message_delta`` replaces the ``message_start`` value, an absent one keeps it."""
    for key, value in update.items():
        if value is not None:
            into[key] = value


def usage_from_gemini(usage: dict[str, Any]) -> Usage:
    """A Gemini ``usageMetadata`` object."""
    thoughts = _int(usage.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=_int(usage.get("promptTokenCount")) + _int(usage.get("toolUsePromptTokenCount")),
        cached_tokens=_int(usage.get("cachedContentTokenCount")),
        output_tokens=_int(usage.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
    )


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


def usage_to_anthropic(usage: Usage) -> dict[str, Any]:
    """The Anthropic ``usage`` object: input excludes cache reads and writes."""
    uncached = usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens
    return {
        "input_tokens": max(uncached, 0),
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.output_tokens,
    }

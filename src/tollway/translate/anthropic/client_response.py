"""An OpenAI chat completion → the Anthropic Messages response: the whole answer an Anthropic client
receives when an OpenAI-compatible upstream served it (the stream is ``client_stream``). Dropped and
approximated fields are listed in ``docs/translation.md``.
"""

from __future__ import annotations

from typing import Any

from tollway.call import Usage
from tollway.translate import pivot
from tollway.translate.anthropic.client_stream import message_id, stop_reason
from tollway.translate.anthropic.upstream_response import anthropic_tool_id
from tollway.usage import usage_from_openai, usage_to_anthropic


def openai_to_anthropic_response(
    body: dict[str, Any], *, model: str, include_thinking: bool = True
) -> dict[str, Any]:
    """The Anthropic Messages response for an OpenAI chat completion (its first choice)."""
    choices = body.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    reasoning = message.get(pivot.REASONING) or message.get("reasoning")
    if include_thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = pivot.content_text(message.get("content")) or message.get("refusal") or ""
    if text:
        content.append({"type": "text", "text": text})
    calls = [
        c
        for c in message.get("tool_calls") or []
        if isinstance(c, dict) and isinstance(c.get("function"), dict)
    ]
    for position, call in enumerate(calls):
        content.append(
            {
                "type": "tool_use",
                "id": anthropic_tool_id(call["id"]) if call.get("id") else f"toolu_{position}",
                "name": str(call["function"].get("name", "")),
                "input": pivot.parse_arguments(call["function"].get("arguments")),
            }
        )
    refused = bool(message.get("refusal")) and not message.get("content")
    reason = "refusal" if refused else stop_reason(choice.get("finish_reason"), tool_calls=bool(calls))
    return {
        "id": message_id(body.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage_from_openai(body.get("usage")) or Usage()),
    }

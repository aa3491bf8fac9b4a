"""Token estimates for when an upstream reports no usage (a stream cut before its usage chunk).

No tokenizer is bundled (the exact ones download their vocabularies at run time, which a gateway
must not depend on), so this is the usual ~4-characters-per-token rule; rows priced from it are
marked ``usage_estimated`` in the log.
"""

from __future__ import annotations

from typing import Any

_PER_MESSAGE = 4


def estimate_text(text: str) -> int:
    return (len(text) + 3) // 4 if text else 0


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def estimate_prompt(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if isinstance(messages, list):
        total = 3
        for m in messages:
            if isinstance(m, dict):
                total += _PER_MESSAGE + estimate_text(_content_text(m.get("content")))
        return total
    inp = body.get("input")
    if isinstance(inp, str):
        return estimate_text(inp)
    if isinstance(inp, list):
        return sum(
            estimate_text(x) if isinstance(x, str) else len(x) if isinstance(x, list) else 0 for x in inp
        )
    return 0

"""Gemini ``generateContent`` answers → OpenAI chat completions: the response and the stream.

Gemini sends whole function calls (never argument fragments), usually without ids: each gets the
next tool-call index of its candidate and an id made from the request id, so ids are unique
across the conversation and a translation is reproducible. ``thought: true`` parts become
``reasoning_content``; thought signatures ride along as ``extra_content.google.thought_signature``
(see ``pivot``). A stream has no end marker: ``finish()`` at the end of the upstream stream
sends the finish chunk (Gemini's last chunk carries ``finishReason`` and the final usage), then
the usage chunk if asked for; the caller writes ``data: [DONE]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tollway.call import Usage
from tollway.translate import pivot
from tollway.translate.errors import gemini_chunk_error, stream_ended_early
from tollway.usage import usage_from_gemini, usage_to_openai

_FILTERED = {
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "MODEL_ARMOR",
}


def finish_reason(reason: Any, *, tool_calls: bool) -> pivot.FinishReason:
    """Gemini says STOP after function calls too. MALFORMED_FUNCTION_CALL, OTHER and the rest have
    no OpenAI counterpart and finish as ``stop``."""
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if tool_calls else "stop"


class _CallIds:
    """``call_<request id>_<n>``: Gemini's own functionCall.id when it sends one, else this."""

    def __init__(self, request_id: str) -> None:
        self._stem = re.sub(r"[^A-Za-z0-9]", "", request_id)[-32:] or "gemini"
        self._next = 0

    def take(self, given: Any) -> str:
        if isinstance(given, str) and given:
            return given
        call_id = f"call_{self._stem}_{self._next}"
        self._next += 1
        return call_id


def _signature_extra(signature: str | None) -> dict[str, Any] | None:
    return pivot.with_google_signature(signature) if signature else None


def gemini_to_openai_response(
    body: dict[str, Any], *, model: str, request_id: str, created: int | None = None
) -> dict[str, Any]:
    """The OpenAI chat completion for a Gemini ``generateContent`` response (one choice per candidate)."""
    ids = _CallIds(request_id)
    choices = []
    for position, candidate in enumerate(body.get("candidates") or []):
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        text_signature: str | None = None
        for part in (candidate.get("content") or {}).get("parts") or []:
            signature = part.get("thoughtSignature")
            call = part.get("functionCall")
            if isinstance(call, dict):
                arguments = pivot.dump_json(call.get("args") or {})
                extra = _signature_extra(signature)
                calls.append(
                    pivot.tool_call(ids.take(call.get("id")), str(call.get("name", "")), arguments, extra)
                )
                continue
            if signature:
                text_signature = signature
            if part.get("thought"):
                thoughts.append(str(part.get("text") or ""))
            elif "text" in part:
                texts.append(str(part["text"]))
        message = pivot.assistant_message(
            text="".join(texts) if texts or not calls else None,
            tool_calls=calls,
            reasoning="".join(thoughts) or None,
            extra=_signature_extra(text_signature),
        )
        index = candidate.get("index", position)
        reason = finish_reason(candidate.get("finishReason"), tool_calls=bool(calls))
        choices.append(pivot.message_choice(index, message, reason))
    if not choices:  # the prompt itself was blocked (promptFeedback.blockReason)
        blocked = bool((body.get("promptFeedback") or {}).get("blockReason"))
        empty = pivot.assistant_message(text="", tool_calls=[])
        choices.append(pivot.message_choice(0, empty, "content_filter" if blocked else "stop"))
    usage = usage_from_gemini(body.get("usageMetadata") or {})
    return pivot.completion(
        request_id=request_id,
        model=model,
        created=pivot.now() if created is None else created,
        choices=choices,
        usage=usage_to_openai(usage),
    )


@dataclass(slots=True)
class _Candidate:
    started: bool = False
    tool_calls: int = 0
    finish: str | None = None
    text_signature: str | None = None


class GeminiToOpenAIStream:
    """Feed each parsed ``streamGenerateContent?alt=sse`` chunk; get back the OpenAI chunks.

    ``usage`` is set by ``finish()``, which raises ``StreamInterrupted`` if a candidate never got
    its ``finishReason``.
    """

    def __init__(
        self, *, model: str, request_id: str, include_usage: bool, created: int | None = None
    ) -> None:
        self._chunks = pivot.ChunkFactory(request_id=request_id, model=model, created=created)
        self._include_usage = include_usage
        self._ids = _CallIds(request_id)
        self._candidates: dict[int, _Candidate] = {}
        self._raw_usage: dict[str, Any] = {}
        self._blocked = False
        self._done = False
        self.usage: Usage | None = None

    def feed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        if self._done:
            return []
        if "error" in data:
            raise gemini_chunk_error(data)
        if isinstance(data.get("usageMetadata"), dict):
            self._raw_usage = data["usageMetadata"]  # cumulative: the last one is the total
        if (data.get("promptFeedback") or {}).get("blockReason"):
            self._blocked = True
        chunks: list[dict[str, Any]] = []
        for position, candidate in enumerate(data.get("candidates") or []):
            index = int(candidate.get("index", position))
            state = self._candidates.setdefault(index, _Candidate())
            for part in (candidate.get("content") or {}).get("parts") or []:
                delta = self._part_delta(state, part)
                if delta:
                    if not state.started:
                        delta = {"role": "assistant", **delta}
                        state.started = True
                    chunks.append(self._chunks.delta(delta, index=index))
            if candidate.get("finishReason"):
                state.finish = str(candidate["finishReason"])
        return chunks

    def _part_delta(self, state: _Candidate, part: dict[str, Any]) -> dict[str, Any]:
        signature = part.get("thoughtSignature")
        call = part.get("functionCall")
        if isinstance(call, dict):
            entry: dict[str, Any] = {
                "index": state.tool_calls,
                "id": self._ids.take(call.get("id")),
                "type": "function",
                "function": {
                    "name": str(call.get("name", "")),
                    "arguments": pivot.dump_json(call.get("args") or {}),
                },
            }
            if signature:
                entry[pivot.EXTRA] = pivot.with_google_signature(signature)
            state.tool_calls += 1
            return {"tool_calls": [entry]}
        if signature:
            state.text_signature = signature  # sent once, with the finish chunk
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return {}
        return {pivot.REASONING: text} if part.get("thought") else {"content": text}

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        if not self._candidates:
            if not self._blocked:
                raise stream_ended_early("gemini")
            self._candidates[0] = _Candidate(finish="SAFETY")
        if any(state.finish is None for state in self._candidates.values()):
            raise stream_ended_early("gemini")
        self._done = True
        chunks = []
        for index in sorted(self._candidates):
            state = self._candidates[index]
            delta: dict[str, Any] = {} if state.started else {"role": "assistant", "content": ""}
            if state.text_signature:
                delta[pivot.EXTRA] = pivot.with_google_signature(state.text_signature)
            reason = finish_reason(state.finish, tool_calls=state.tool_calls > 0)
            chunks.append(self._chunks.delta(delta, index=index, finish_reason=reason))
        self.usage = usage_from_gemini(self._raw_usage)
        if self._include_usage:
            chunks.append(self._chunks.usage(usage_to_openai(self.usage)))
        return chunks

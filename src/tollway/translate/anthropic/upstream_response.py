"""Anthropic Messages answers → OpenAI chat completions: the response and the stream.

The stream machine turns Anthropic's typed events into ``chat.completion.chunk`` objects:

- ``message_start`` → the role chunk; its usage (input and cache counts) is kept.
- a ``tool_use`` block → the next OpenAI tool-call index (indices count tool calls only, so a
  text block before it does not shift it), its ``input_json_delta`` fragments → argument
  fragments; a block that streamed no argument text sends ``{}`` (never ``""``, never a ``{}``
  prefix before the real arguments).
- thinking → ``reasoning_content`` deltas, then the whole block with its signature as one
  ``thinking_blocks`` entry when the block stops (see ``pivot``).
- ``message_delta`` → stop reason and output usage, merged with message_start's counts.
- ``message_stop`` → the finish chunk, then the usage chunk if the client asked for one.
- ``ping`` is ignored; an ``error`` event raises ``UpstreamError``. The caller writes
  ``data: [DONE]`` after the last chunk: Anthropic has no such sentinel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tollway.call import Usage
from tollway.translate import pivot
from tollway.translate.errors import anthropic_event_error, stream_ended_early
from tollway.usage import merge_anthropic_usage, usage_from_anthropic, usage_to_openai

JSON_TOOL = "tollway_json_response"
"""The tool that carries a ``json_schema`` response format (see ``anthropic``)."""

_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def anthropic_tool_id(call_id: Any) -> str:
    """Anthropic accepts tool-use ids matching ``^[A-Za-z0-9_-]+$``; other providers' ids (Kimi's
    ``functions.get_weather:0``) are mapped deterministically so a tool_use and its tool_result agree."""
    text = _INVALID_ID_CHARS.sub("_", str(call_id or ""))
    return text or "toolu_missing_id"


def finish_reason(stop_reason: Any, *, tool_calls: bool) -> pivot.FinishReason:
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        return "length"  # also when the cut fell inside a tool call's arguments
    if stop_reason == "tool_use":
        return "tool_calls" if tool_calls else "stop"  # only the JSON tool was called
    if stop_reason == "refusal":
        return "content_filter"
    return "stop"  # end_turn, stop_sequence, pause_turn


def anthropic_to_openai_response(
    body: dict[str, Any], *, model: str, request_id: str, created: int | None = None
) -> dict[str, Any]:
    """The OpenAI chat completion for an Anthropic Messages response."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
            thinking_blocks.append(
                {
                    "type": "thinking",
                    "thinking": block.get("thinking", ""),
                    "signature": block.get("signature", ""),
                }
            )
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data", "")})
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(pivot.dump_json(block.get("input") or {}))
        elif kind == "tool_use":
            arguments = pivot.dump_json(block.get("input") or {})
            call = pivot.tool_call(str(block.get("id", "")), str(block.get("name", "")), arguments)
            tool_calls.append(call)
        # server tools (web search, code execution) ran upstream; OpenAI has no place for their blocks
    message = pivot.assistant_message(
        text="".join(texts) if texts or not tool_calls else None,
        tool_calls=tool_calls,
        reasoning="".join(reasoning) or None,
        thinking_blocks=thinking_blocks,
    )
    reason = finish_reason(body.get("stop_reason"), tool_calls=bool(tool_calls))
    return pivot.completion(
        request_id=request_id,
        model=model,
        created=pivot.now() if created is None else created,
        choices=[pivot.message_choice(0, message, reason)],
        usage=usage_to_openai(usage_from_anthropic(body.get("usage") or {})),
    )


@dataclass(slots=True)
class _Block:
    kind: str  # text | thinking | tool | json | other
    position: int = -1  # the OpenAI tool-call index of a tool block
    start_input: Any = None
    streamed_arguments: bool = False
    thinking: list[str] = field(default_factory=list)
    signature: str = ""


class AnthropicToOpenAIStream:
    """Feed each parsed Anthropic stream event; get back the OpenAI chunks it completes.

    ``usage`` is set once the message is complete. ``finish()`` at the end of the upstream stream
    returns any chunks still owed, or raises ``StreamInterrupted`` if the message never finished.
    """

    def __init__(
        self, *, model: str, request_id: str, include_usage: bool, created: int | None = None
    ) -> None:
        self._chunks = pivot.ChunkFactory(request_id=request_id, model=model, created=created)
        self._include_usage = include_usage
        self._blocks: dict[int, _Block] = {}
        self._tool_calls = 0
        self._thinking_blocks = 0
        self._raw_usage: dict[str, Any] = {}
        self._stop_reason: str | None = None
        self._done = False
        self.usage: Usage | None = None

    def feed(self, event: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        kind = data.get("type") or event
        if self._done or kind == "ping":
            return []
        if kind == "error":
            raise anthropic_event_error(data)
        if kind == "message_start":
            message = data.get("message") or {}
            merge_anthropic_usage(self._raw_usage, message.get("usage") or {})
            return [self._chunks.delta({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(int(data.get("index", 0)))
        if kind == "message_delta":
            self._stop_reason = (data.get("delta") or {}).get("stop_reason") or self._stop_reason
            merge_anthropic_usage(self._raw_usage, data.get("usage") or {})
            return []
        if kind == "message_stop":
            return self._final()
        return []  # event types added after this was written

    def finish(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        if self._stop_reason is None:
            raise stream_ended_early("anthropic")
        return self._final()  # message_delta arrived but message_stop was lost: the message is whole

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = _Block("text")
            return self._content(str(block.get("text") or ""))
        if kind == "thinking":
            self._blocks[index] = _Block("thinking", thinking=[str(block.get("thinking") or "")])
            return self._reasoning(str(block.get("thinking") or ""))
        if kind == "redacted_thinking":
            self._blocks[index] = _Block("other")
            return [self._thinking_block({"type": "redacted_thinking", "data": block.get("data", "")})]
        if kind == "tool_use" and block.get("name") == JSON_TOOL:
            self._blocks[index] = _Block("json", start_input=block.get("input"))
            return []
        if kind == "tool_use":
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = _Block("tool", position=position, start_input=block.get("input"))
            fragment = {
                "id": str(block.get("id", "")),
                "type": "function",
                "function": {"name": str(block.get("name", "")), "arguments": ""},
            }
            return [self._chunks.tool_delta(position, fragment)]
        self._blocks[index] = _Block("other")  # server tool use and results: upstream's business
        return []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        block = self._blocks.get(index)
        kind = delta.get("type")
        if block is None:
            return []
        if kind == "text_delta" and block.kind == "text":
            return self._content(str(delta.get("text") or ""))
        if kind == "thinking_delta" and block.kind == "thinking":
            text = str(delta.get("thinking") or "")
            block.thinking.append(text)
            return self._reasoning(text)
        if kind == "signature_delta" and block.kind == "thinking":
            block.signature += str(delta.get("signature") or "")
            return []
        if kind == "input_json_delta" and block.kind in ("tool", "json"):
            partial = str(delta.get("partial_json") or "")
            if not partial:
                return []
            block.streamed_arguments = True
            if block.kind == "json":
                return self._content(partial)
            return [self._chunks.tool_delta(block.position, {"function": {"arguments": partial}})]
        return []  # citations_delta and anything newer

    def _block_stop(self, index: int) -> list[dict[str, Any]]:
        block = self._blocks.pop(index, None)
        if block is None:
            return []
        if block.kind in ("tool", "json") and not block.streamed_arguments:
            arguments = pivot.dump_json(block.start_input or {})
            if block.kind == "json":
                return self._content(arguments)
            return [self._chunks.tool_delta(block.position, {"function": {"arguments": arguments}})]
        if block.kind == "thinking":
            saved = {"type": "thinking", "thinking": "".join(block.thinking), "signature": block.signature}
            return [self._thinking_block(saved)]
        return []

    def _content(self, text: str) -> list[dict[str, Any]]:
        return [self._chunks.delta({"content": text})] if text else []

    def _reasoning(self, text: str) -> list[dict[str, Any]]:
        return [self._chunks.delta({pivot.REASONING: text})] if text else []

    def _thinking_block(self, saved: dict[str, Any]) -> dict[str, Any]:
        entry = {"index": self._thinking_blocks, **saved}
        self._thinking_blocks += 1
        return self._chunks.delta({pivot.THINKING_BLOCKS: [entry]})

    def _final(self) -> list[dict[str, Any]]:
        self._done = True
        self.usage = usage_from_anthropic(self._raw_usage)
        reason = finish_reason(self._stop_reason, tool_calls=self._tool_calls > 0)
        chunks = [self._chunks.delta({}, finish_reason=reason)]
        if self._include_usage:
            chunks.append(self._chunks.usage(usage_to_openai(self.usage)))
        return chunks

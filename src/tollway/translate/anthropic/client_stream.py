"""OpenAI ``chat.completion.chunk`` stream → Anthropic Messages stream events, for Anthropic clients.

The events come out in the order Anthropic's own API sends them, which the Anthropic SDKs and Claude
Code rely on: one ``message_start``, a ``ping``, then for each content block a
``content_block_start``, its deltas, its ``content_block_stop`` (one block open at a time), and at
the end one ``message_delta`` (stop reason and usage) and one ``message_stop``.

Tool calls: OpenAI streams argument fragments by tool-call index, and some upstreams interleave the
fragments of parallel calls (index 0, 1, 0, 1 ...), while an Anthropic block must be whole before the
next starts. The first tool call is streamed live; every other call is buffered per index and sent
as one complete block (start, one ``input_json_delta``, stop) in index order when the upstream
finishes. Text that arrives after a tool call started is buffered the same way. A call with no
arguments sends no ``input_json_delta``, so its input is ``{}``.

The closing events wait for ``finish()`` (the upstream's ``[DONE]`` or end of stream) because the
usage chunk of ``stream_options.include_usage`` comes after the chunk with ``finish_reason``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tollway.call import Usage
from tollway.translate import pivot
from tollway.translate.anthropic.upstream_response import anthropic_tool_id
from tollway.translate.errors import openai_chunk_error, stream_ended_early
from tollway.usage import usage_from_openai, usage_to_anthropic

Event = tuple[str, dict[str, Any]]


def message_id(openai_id: Any) -> str:
    stem = re.sub(r"[^A-Za-z0-9_]", "", str(openai_id or "").removeprefix("chatcmpl-"))
    return f"msg_{stem or 'tollway'}"


def stop_reason(finish: Any, *, tool_calls: bool) -> str:
    if finish == "length":
        return "max_tokens"  # also when the cut fell inside a tool call's arguments
    if tool_calls or finish in ("tool_calls", "function_call"):
        return "tool_use"  # some upstreams say "stop" after tool calls
    if finish == "content_filter":
        return "refusal"
    return "end_turn"


@dataclass(slots=True)
class _Tool:
    position: int
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    block: int | None = None  # its Anthropic block index once started


class OpenAIToAnthropicStream:
    """Feed each parsed OpenAI chunk; get back ``(event name, data)`` pairs to send as named SSE
    events. ``finish()`` at the end of the upstream stream returns the closing events, or raises
    ``StreamInterrupted`` if the upstream never said why it stopped. ``usage`` is set by ``finish()``."""

    def __init__(self, *, model: str, message_id: str | None = None, include_thinking: bool = True) -> None:
        self._model = model
        self._id = message_id
        self._include_thinking = include_thinking
        self._started = False
        self._open: tuple[str, int] | None = None  # (text | thinking | tool, block index)
        self._blocks = 0
        self._tools: dict[int, _Tool] = {}
        self._live: _Tool | None = None
        self._last_tool = 0
        self._late_text: list[str] = []
        self._finish: str | None = None
        self._upstream_usage: Usage | None = None
        self._done = False
        self.usage: Usage | None = None

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._done:
            return []
        if "error" in chunk:
            raise openai_chunk_error(chunk)
        events: list[Event] = [] if self._started else self._start(chunk)
        if isinstance(chunk.get("usage"), dict):
            self._upstream_usage = usage_from_openai(chunk["usage"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic has one answer per message: n > 1 is never asked for
            delta = choice.get("delta") or {}
            reasoning = delta.get(pivot.REASONING) or delta.get("reasoning")
            if self._include_thinking and isinstance(reasoning, str) and reasoning:
                events += self._thinking(reasoning)
            for text in (delta.get("content"), delta.get("refusal")):
                if isinstance(text, str) and text:
                    events += self._text(text)
            for position, fragment in enumerate(delta.get("tool_calls") or []):
                if isinstance(fragment, dict):
                    events += self._tool_fragment(fragment, position)
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
        return events

    def finish(self) -> list[Event]:
        if self._done:
            return []
        if not self._started or self._finish is None:
            raise stream_ended_early("openai")
        events = self._close()
        for tool in sorted(self._tools.values(), key=lambda t: t.position):
            if tool.block is None:
                events += self._start_tool(tool)
                events += self._json_delta(tool, "".join(tool.arguments))
                events += self._close()
        if self._late_text:
            events += self._open_block("text", {"type": "text", "text": ""})
            events.append(self._delta({"type": "text_delta", "text": "".join(self._late_text)}))
            events += self._close()
        self.usage = self._upstream_usage or Usage()
        reason = stop_reason(self._finish, tool_calls=bool(self._tools))
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": reason, "stop_sequence": None},
                    "usage": usage_to_anthropic(self.usage),
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        self._done = True
        return events

    # --- blocks -------------------------------------------------------------------------------

    def _start(self, chunk: dict[str, Any]) -> list[Event]:
        self._started = True
        self._id = self._id or message_id(chunk.get("id"))
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message}), ("ping", {"type": "ping"})]

    def _open_block(self, kind: str, content_block: dict[str, Any]) -> list[Event]:
        events = self._close()
        index = self._blocks
        self._blocks += 1
        self._open = (kind, index)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": content_block},
            )
        )
        return events

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        index = self._open[1]
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _delta(self, delta: dict[str, Any]) -> Event:
        assert self._open is not None
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._open[1], "delta": delta},
        )

    def _text(self, text: str) -> list[Event]:
        if self._tools:
            self._late_text.append(text)
            return []
        events = (
            []
            if self._open and self._open[0] == "text"
            else self._open_block("text", {"type": "text", "text": ""})
        )
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def _thinking(self, text: str) -> list[Event]:
        if self._tools:
            return []  # reasoning after a tool call started has no place left to go
        events: list[Event] = []
        if not (self._open and self._open[0] == "thinking"):
            events = self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        events.append(self._delta({"type": "thinking_delta", "thinking": text}))
        return events

    def _tool_fragment(self, fragment: dict[str, Any], position: int) -> list[Event]:
        index = fragment.get("index")
        if not isinstance(index, int):  # upstreams that omit the index: a new id is a new call
            known = any(t.id == fragment.get("id") for t in self._tools.values())
            index = len(self._tools) if fragment.get("id") and not known else self._last_tool + position
        self._last_tool = index
        tool = self._tools.get(index)
        if tool is None:
            tool = self._tools[index] = _Tool(index)
            if self._live is None:
                self._live = tool
        if fragment.get("id") and not tool.id:
            tool.id = str(fragment["id"])
        function = pivot.as_dict(fragment.get("function"))
        if function.get("name") and not tool.name:  # some upstreams repeat the name in every fragment
            tool.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            tool.arguments.append(arguments)
        if tool is not self._live or not tool.name:
            return []
        events: list[Event] = []
        if tool.block is None:
            events += self._start_tool(tool)
        events += self._json_delta(tool, "".join(tool.arguments))
        tool.arguments.clear()
        return events

    def _start_tool(self, tool: _Tool) -> list[Event]:
        call_id = (
            anthropic_tool_id(tool.id) if tool.id else f"toolu_{(self._id or 'msg')[4:]}_{tool.position}"
        )
        content_block = {"type": "tool_use", "id": call_id, "name": tool.name, "input": {}}
        events = self._open_block("tool", content_block)
        tool.block = self._blocks - 1
        return events

    def _json_delta(self, tool: _Tool, arguments: str) -> list[Event]:
        if not arguments:
            return []
        return [self._delta({"type": "input_json_delta", "partial_json": arguments})]

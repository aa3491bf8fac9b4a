"""OpenAI chat answers in both shapes: a stream of ``chat.completion.chunk`` objects reassembled into
one ``chat.completion`` (``Assembler``), and a ``chat.completion`` replayed as a stream
(``synthesize_chunks``), in the order the official SDKs' stream helpers expect (role first, then content,
tool calls by index, the finish reason, the usage chunk when asked for, ``[DONE]``).

What the assembler does not understand (a delta field it does not know, a legacy ``function_call``)
makes the answer unassemblable: such an answer is passed on but never cached. The cache and the
client protocols' cache codecs (``protocols/``) use both shapes; they are the pivot's, so they live
with the translators and depend on no cache module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..call import Usage
from ..sse import encode_json
from ..usage import usage_to_openai

_TOP_FIELDS = ("system_fingerprint", "service_tier")


@dataclass(slots=True)
class _ToolCall:
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    tool_calls: dict[int, _ToolCall] = field(default_factory=dict)
    logprobs: list[Any] = field(default_factory=list)
    saw_content: bool = False
    finish_reason: str | None = None

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content) if self.saw_content or not self.tool_calls else None,
            "refusal": "".join(self.refusal) if self.refusal else None,
        }
        if self.reasoning:
            msg["reasoning_content"] = "".join(self.reasoning)
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": tc.id,
                    "type": tc.type,
                    "function": {"name": tc.name, "arguments": "".join(tc.arguments)},
                }
                for _, tc in sorted(self.tool_calls.items())
            ]
        return msg


class Assembler:
    """Feed each parsed chunk of one stream; ``completion()`` is the whole answer once it finished."""

    __slots__ = ("_choices", "_top", "understood", "usage")

    def __init__(self) -> None:
        self._choices: dict[int, _Choice] = {}
        self._top: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.understood = True

    def feed(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it is the usage-only chunk (no choices) that ends a stream."""
        if not self._top:
            self._top = {
                "id": chunk.get("id", ""),
                "created": chunk.get("created", 0),
                "model": chunk.get("model", ""),
            }
            for name in _TOP_FIELDS:
                if chunk.get(name) is not None:
                    self._top[name] = chunk[name]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not choices:
            return usage is not None
        for raw in choices:
            if not isinstance(raw, dict):
                self.understood = False
                continue
            choice = self._choices.setdefault(int(raw.get("index") or 0), _Choice())
            delta = raw.get("delta") or {}
            for name, value in delta.items():
                if value is None or name == "role":
                    continue
                if name == "content":
                    choice.saw_content = True
                    choice.content.append(value)
                elif name == "refusal":
                    choice.refusal.append(value)
                elif name == "reasoning_content":
                    choice.reasoning.append(value)
                elif name == "tool_calls":
                    self._tool_calls(choice, value)
                else:
                    self.understood = False
            logprobs = raw.get("logprobs")
            if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                choice.logprobs.extend(logprobs["content"])
            if raw.get("finish_reason"):
                choice.finish_reason = raw["finish_reason"]
        return False

    def _tool_calls(self, choice: _Choice, calls: Any) -> None:
        for tc in calls if isinstance(calls, list) else ():
            index = tc.get("index")
            if not isinstance(index, int):
                self.understood = False
                continue
            slot = choice.tool_calls.setdefault(index, _ToolCall())
            if tc.get("id"):
                slot.id = tc["id"]
            if tc.get("type"):
                slot.type = tc["type"]
            fn = tc.get("function") or {}
            if fn.get("name"):
                slot.name += fn["name"]
            if fn.get("arguments"):
                slot.arguments.append(fn["arguments"])

    def completion(self, usage: Usage | None = None) -> dict[str, Any] | None:
        """The ``chat.completion``, or None when any choice is unfinished. ``usage`` fills in the
        usage when the stream carried none (the client did not ask for it)."""
        if not self._choices or any(c.finish_reason is None for c in self._choices.values()):
            return None
        choices = []
        for index, c in sorted(self._choices.items()):
            choices.append(
                {
                    "index": index,
                    "message": c.message(),
                    "logprobs": {"content": c.logprobs, "refusal": None} if c.logprobs else None,
                    "finish_reason": c.finish_reason,
                }
            )
        out: dict[str, Any] = {
            "id": self._top.get("id", ""),
            "object": "chat.completion",
            "created": self._top.get("created", 0),
            "model": self._top.get("model", ""),
            "choices": choices,
        }
        for name in _TOP_FIELDS:
            if name in self._top:
                out[name] = self._top[name]
        if self.usage is not None:
            out["usage"] = self.usage
        elif usage is not None:
            out["usage"] = usage_to_openai(usage)
        return out


def usage_chunk(completion: dict[str, Any], usage: dict[str, Any]) -> bytes:
    return encode_json(_chunk(completion, [], usage=usage))


def _chunk(completion: dict[str, Any], choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    for name in _TOP_FIELDS:
        if name in completion:
            out[name] = completion[name]
    out["choices"] = choices
    out.update(extra)
    return out


def _delta(
    index: int, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


def synthesize_chunks(completion: dict[str, Any], *, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one ``chat.completion``, in stream order."""
    chunks: list[dict[str, Any]] = []
    for choice in completion.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        chunks.append(_chunk(completion, [_delta(index, {"role": "assistant", "content": ""})]))
        if message.get("reasoning_content"):
            chunks.append(
                _chunk(completion, [_delta(index, {"reasoning_content": message["reasoning_content"]})])
            )
        if message.get("content") or choice.get("logprobs"):
            chunks.append(
                _chunk(
                    completion,
                    [
                        _delta(
                            index, {"content": message.get("content") or ""}, logprobs=choice.get("logprobs")
                        )
                    ],
                )
            )
        if message.get("refusal"):
            chunks.append(_chunk(completion, [_delta(index, {"refusal": message["refusal"]})]))
        for i, tc in enumerate(message.get("tool_calls") or ()):
            delta = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": tc.get("id"),
                        "type": tc.get("type", "function"),
                        "function": tc.get("function") or {},
                    }
                ]
            }
            chunks.append(_chunk(completion, [_delta(index, delta)]))
        chunks.append(_chunk(completion, [_delta(index, {}, choice.get("finish_reason"))]))
    usage = completion.get("usage")
    if include_usage and isinstance(usage, dict):
        chunks.append(_chunk(completion, [], usage=usage))
    return chunks

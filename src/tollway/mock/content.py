"""What the mock providers say: deterministic, format-neutral answer content.

Every wire format (OpenAI, Anthropic, Gemini) asks the same question of this module: given a
prompt and the request's intent (tools, JSON mode, token limit), what is the answer and how many
tokens did it cost? The answer depends only on the request, so an identical request always gets an
identical answer, which caches and dedup tests rely on.

``count_tokens`` and ``count_payload_tokens`` are the one token approximation of tollway's fakes;
other code may reuse them to estimate usage when a stream carries none.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import orjson

FinishReason = Literal["stop", "length", "tool_calls"]

MESSAGE_OVERHEAD = 3  # tokens each chat message costs besides its text, as OpenAI counts it
REPLY_PRIMING = 3  # tokens every chat prompt costs for priming the reply

_ECHO_WORDS = 8  # how many words of the prompt the reply repeats
_MAX_SCHEMA_DEPTH = 8
_FILLER = (
    "alpha", "bravo", "cedar", "delta", "ember", "fable", "glade", "harbor",
    "island", "jasper", "kettle", "lumen", "meadow", "nectar", "orbit", "pebble",
    "quartz", "river", "signal", "timber", "umber", "velvet", "willow", "xenon",
    "yonder", "zephyr", "amber", "beacon", "canyon", "dune", "echo", "forest",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the client offers: its name and JSON-schema parameters."""

    name: str
    parameters: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Ask:
    """What one request wants, independent of its wire format."""

    prompt: str
    words: int
    max_tokens: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_name: str | None = None  # a tool the client forces; None lets the mock pick the first
    call_tools: bool = False
    parallel_tools: bool = False
    json_object: bool = False
    json_schema: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str  # JSON text, as the wire formats carry it


@dataclass(frozen=True, slots=True)
class Answer:
    text: str | None
    pieces: tuple[str, ...]  # ``text`` split the way a stream delivers it
    tool_calls: tuple[ToolCall, ...]
    finish: FinishReason
    completion_tokens: int


def count_tokens(text: str) -> int:
    """Approximate tokens in ``text``: one per four characters, rounded up."""
    return _tokens_in_chars(len(text))


def count_payload_tokens(value: object) -> int:
    """Approximate tokens of every string inside a JSON-like value (a message, a tool list...)."""
    if isinstance(value, str):
        return count_tokens(value)
    if isinstance(value, Mapping):
        return sum(count_payload_tokens(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(count_payload_tokens(item) for item in value)
    return 0


def count_prompt_tokens(messages: Sequence[object], tools: Sequence[object] = ()) -> int:
    """Approximate prompt tokens of a chat request, whatever the shape of its messages."""
    total = REPLY_PRIMING + sum(MESSAGE_OVERHEAD + count_payload_tokens(m) for m in messages)
    return total + count_payload_tokens(tools)


@lru_cache(maxsize=4096)
def reply_words(prompt: str, words: int) -> tuple[str, ...]:
    """The reply's words: ``Mock reply to:``, the prompt's first words, then filler to ``words``."""
    head = ["Mock", "reply", "to:", *prompt.split()[:_ECHO_WORDS]]
    digest = hashlib.blake2b(prompt.encode(), digest_size=16).digest()
    filler = (_FILLER[(digest[i % 16] + i) % len(_FILLER)] for i in range(max(0, words - len(head))))
    return (*head, *filler)[: max(words, 0)]


def reply_text(prompt: str, words: int) -> str:
    return " ".join(reply_words(prompt, words))


def sample_value(
    schema: Mapping[str, object], root: Mapping[str, object] | None = None, depth: int = 0
) -> object:
    """A value that satisfies a simple JSON schema: the first enum value, "mock", 1, 1.5, true, [], {}."""
    root = schema if root is None else root
    if depth > _MAX_SCHEMA_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve_local_ref(root, ref)
        return sample_value(target, root, depth + 1) if target is not None else {}
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options and isinstance(options[0], Mapping):
            return sample_value(options[0], root, depth + 1)
    kind = _schema_type(schema)
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {
            str(name): sample_value(sub, root, depth + 1)
            for name, sub in properties.items()
            if isinstance(sub, Mapping)
        }
    return {"string": "mock", "integer": 1, "number": 1.5, "boolean": True, "array": []}.get(kind)


def tool_arguments(parameters: Mapping[str, object]) -> str:
    """JSON arguments for a call of a function with these parameters ("{}" when it takes none)."""
    value = sample_value(parameters) if parameters else {}
    return orjson.dumps(value if isinstance(value, dict) else {}).decode()


def answer(ask: Ask) -> Answer:
    """The mock's deterministic answer to one request."""
    if ask.call_tools and ask.tools:
        calls = _tool_calls(ask)
        tokens = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        return Answer(None, (), calls, "tool_calls", tokens)
    if ask.json_schema is not None or ask.json_object:
        value = sample_value(ask.json_schema) if ask.json_schema is not None else None
        if not isinstance(value, dict):
            value = {"reply": reply_text(ask.prompt, ask.words)}
        text = orjson.dumps(value).decode()
        return Answer(text, split_fragments(text, 8), (), "stop", count_tokens(text))
    words = reply_words(ask.prompt, ask.words)
    kept = _words_within(words, ask.max_tokens)
    text = " ".join(kept)
    pieces = tuple(word if i == 0 else " " + word for i, word in enumerate(kept))
    finish: FinishReason = "length" if len(kept) < len(words) else "stop"
    return Answer(text, pieces, (), finish, count_tokens(text))


def split_fragments(text: str, size: int) -> tuple[str, ...]:
    """``text`` cut into pieces of at most ``size`` characters (at least one piece)."""
    size = max(size, 1)
    return tuple(text[i : i + size] for i in range(0, len(text), size)) or ("",)


@lru_cache(maxsize=8192)
def embedding(text: str, dimensions: int) -> tuple[float, ...]:
    """A unit vector seeded by ``text``; every component is exactly representable as float32."""
    raw = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    centred = [n / 2147483648.0 - 1.0 for n in struct.unpack(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(x * x for x in centred)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(x / norm for x in centred))
    return struct.unpack(f"<{dimensions}f", packed)


def embedding_base64(vector: Sequence[float]) -> str:
    """The vector as OpenAI's ``encoding_format: base64``: little-endian float32 bytes."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _tokens_in_chars(chars: int) -> int:
    return (chars + 3) // 4


def _words_within(words: tuple[str, ...], max_tokens: int | None) -> tuple[str, ...]:
    if max_tokens is None:
        return words
    length = -1  # no leading space before the first word
    for kept, word in enumerate(words):
        length += len(word) + 1
        if _tokens_in_chars(length) > max_tokens:
            return words[:kept]
    return words


def _tool_calls(ask: Ask) -> tuple[ToolCall, ...]:
    by_name = {tool.name: tool for tool in ask.tools}
    first = by_name.get(ask.tool_name or "", ask.tools[0])
    chosen = [first]
    if ask.parallel_tools:
        others = [tool for tool in ask.tools if tool is not first]
        chosen.append(others[0] if others else first)
    return tuple(ToolCall(tool.name, tool_arguments(tool.parameters)) for tool in chosen)


def _schema_type(schema: Mapping[str, object]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _resolve_local_ref(root: Mapping[str, object], ref: str) -> Mapping[str, object] | None:
    if not ref.startswith("#"):
        return None
    node: object = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        if not isinstance(node, Mapping):
            return None
        node = node.get(part.replace("~1", "/").replace("~0", "~"))
    return node if isinstance(node, Mapping) else None

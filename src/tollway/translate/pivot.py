"""The OpenAI chat-completions format, the hub every translator goes through: reading a request's
fields, and building responses and stream chunks.

Vendor fields tollway adds to OpenAI messages and deltas, so that what another provider needs back
on the next turn survives an OpenAI client's round trip (clients that append the assistant message
they received to ``messages`` keep them without knowing):

``reasoning_content`` (message and delta)
    The model's visible reasoning text (Anthropic thinking, Gemini thought summaries): the field
    DeepSeek, vLLM and others use. Display only; never sent back upstream.
``thinking_blocks`` (message; delta entries carry an ``index``)
    Anthropic's ``thinking`` / ``redacted_thinking`` blocks verbatim, ``signature`` / ``data``
    included. On the way back to Anthropic they are restored in front of the text and tool calls.
``extra_content.google.thought_signature`` (tool call; also message / final delta)
    Gemini's ``thoughtSignature`` of the part it came with: on a tool call, its functionCall part's;
    on the message, its last text part's. The same field Google's own OpenAI-compatible endpoint uses.
"""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson

REASONING = "reasoning_content"
THINKING_BLOCKS = "thinking_blocks"
EXTRA = "extra_content"

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


def now() -> int:
    return int(time.time())


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


def parse_arguments(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments (a JSON string) as the object Anthropic and Gemini want. Empty is ``{}``;
    text that is not a JSON object is kept, under ``_raw_arguments``, rather than dropped."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_raw_arguments": arguments}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<media type>;base64,<data>`` as (media type, base64 data); None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    if not sep:
        return None
    params = header.split(";")
    media_type = params[0] or "application/octet-stream"
    if "base64" not in params[1:]:
        return None
    return media_type, data


def guess_media_type(url: str) -> str | None:
    path = url.split("?", 1)[0].split("#", 1)[0]
    media_type, _ = mimetypes.guess_type(path)
    return media_type


def content_text(content: Any, *, separator: str = "") -> str:
    """The text of a message ``content``: a string, or the text (and refusal) parts of a list."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = [
        str(part.get("text") if part.get("type") == "text" else part.get("refusal", ""))
        for part in content
        if isinstance(part, dict) and part.get("type") in ("text", "refusal")
    ]
    return separator.join(texts)


def google_signature(holder: Any) -> str | None:
    extra = holder.get(EXTRA) if isinstance(holder, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def with_google_signature(signature: str) -> dict[str, Any]:
    return {"google": {"thought_signature": signature}}


# --- request fields ---------------------------------------------------------------------------


def max_output_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def stop_sequences(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required"]
    name: str | None = None  # a named function: mode is "required"


def tool_choice(body: dict[str, Any]) -> ToolChoice | None:
    """``tool_choice`` in its three spellings (string, named function, ``allowed_tools``)."""
    choice = body.get("tool_choice")
    if choice in ("auto", "none", "required"):
        return ToolChoice(choice)
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            function = choice.get("function")
            if isinstance(function, dict) and isinstance(function.get("name"), str):
                return ToolChoice("required", function["name"])
        if choice.get("type") == "allowed_tools":
            allowed = choice.get("allowed_tools")
            mode = allowed.get("mode") if isinstance(allowed, dict) else None
            return ToolChoice("required" if mode == "required" else "auto")
    return None


def function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``function`` objects of the request's function tools, restricted to the names an
    ``allowed_tools`` tool choice permits. Other tool kinds (``custom``) have no equivalent."""
    allowed: set[str] | None = None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        tools = spec.get("tools") if isinstance(spec, dict) else None
        allowed = {
            str(t["function"]["name"])
            for t in tools or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict) and "name" in t["function"]
        }
    functions = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        if allowed is None or function["name"] in allowed:
            functions.append(function)
    return functions


def response_format(body: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(``"text"`` | ``"json_object"`` | ``"json_schema"``, the ``json_schema`` object if any)."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return "text", None
    kind = fmt.get("type")
    if kind == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        return "json_schema", fmt["json_schema"]
    if kind == "json_object":
        return "json_object", None
    return "text", None


# --- responses and chunks ---------------------------------------------------------------------


def completion(
    *,
    request_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    usage: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def message_choice(index: int, message: dict[str, Any], finish_reason: FinishReason) -> dict[str, Any]:
    return {"index": index, "message": message, "finish_reason": finish_reason, "logprobs": None}


def assistant_message(
    *,
    text: str | None,
    tool_calls: list[dict[str, Any]],
    reasoning: str | None = None,
    thinking_blocks: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message[REASONING] = reasoning
    if thinking_blocks:
        message[THINKING_BLOCKS] = thinking_blocks
    if extra:
        message[EXTRA] = extra
    return message


def tool_call(call_id: str, name: str, arguments: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    if extra:
        call[EXTRA] = extra
    return call


class ChunkFactory:
    """Builds the ``chat.completion.chunk`` objects of one stream (same id, model and created)."""

    __slots__ = ("created", "model", "request_id")

    def __init__(self, *, request_id: str, model: str, created: int | None) -> None:
        self.request_id = request_id
        self.model = model
        self.created = now() if created is None else created

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def delta(
        self, delta: dict[str, Any], *, index: int = 0, finish_reason: FinishReason | None = None
    ) -> dict[str, Any]:
        return self._base(
            [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
        )

    def tool_delta(self, position: int, fragment: dict[str, Any], *, index: int = 0) -> dict[str, Any]:
        return self.delta({"tool_calls": [{"index": position, **fragment}]}, index=index)

    def usage(self, usage: dict[str, Any]) -> dict[str, Any]:
        """The extra last chunk of ``stream_options.include_usage``: no choices, only usage."""
        chunk = self._base([])
        chunk["usage"] = usage
        return chunk

"""The OpenAI chat-completions body (the pivot) → the Anthropic Messages request an upstream Claude is
sent: an OpenAI client, or any client through the pivot, served by Anthropic.

``openai_to_anthropic_request`` builds the ``/v1/messages`` body; ``upstream_response`` turns the
answer back into the pivot. What is approximated or dropped, and why, is in ``docs/translation.md``.

JSON mode, which Anthropic has no switch for:

- ``response_format: json_object`` adds an instruction to the system prompt.
- ``response_format: json_schema`` becomes a tool named ``JSON_TOOL`` whose input schema is the
  requested schema, forced with ``tool_choice`` when nothing else needs the tool choice (no client
  tools, no extended thinking, which forbids forced tools); otherwise the tool is offered with an
  instruction to answer through it. The response side turns that tool call back into the message
  text, with finish reason ``stop``. ``structured_output="native"`` sends the schema as
  ``output_config.format`` instead, for models that support Anthropic's structured outputs.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from tollway.errors import InvalidRequest, TranslationError
from tollway.translate import pivot
from tollway.translate.anthropic.upstream_response import JSON_TOOL, anthropic_tool_id

JSON_OBJECT_INSTRUCTION = (
    "Reply with a single valid JSON object and nothing else: no prose, no Markdown code fences."
)
JSON_TOOL_INSTRUCTION = (
    f"When you give your final answer, give it by calling the {JSON_TOOL} tool instead of replying in text."
)

# reasoning_effort → extended-thinking budget (tokens); Anthropic's minimum budget is 1024
_THINKING_BUDGET = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 32768}
_ADAPTIVE_EFFORT = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}
_MIN_BUDGET = 1024

# --- request ----------------------------------------------------------------------------------


def openai_to_anthropic_request(
    body: dict[str, Any],
    upstream_model: str,
    *,
    default_max_tokens: int = 4096,
    sampling: bool = True,
    thinking: Literal["budget", "adaptive"] = "budget",
    structured_output: Literal["tool", "native"] = "tool",
) -> dict[str, Any]:
    """The Anthropic Messages body for an OpenAI chat-completions body.

    ``sampling=False`` drops temperature/top_p/top_k for models that reject them. ``thinking``
    chooses how ``reasoning_effort`` is expressed: a ``budget_tokens`` budget (Claude 3.7–4.5) or
    ``adaptive`` thinking with ``output_config.effort`` (newer models). A client may also send
    Anthropic's own ``thinking`` object, which is passed as is.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    n = body.get("n")
    if n is not None and n != 1:
        raise TranslationError("Anthropic models return one choice: n must be 1", param="n")

    system, turns = _convert_messages(messages)
    out: dict[str, Any] = {"model": upstream_model, "messages": turns}

    max_tokens = pivot.max_output_tokens(body)
    out["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens

    tools = [_tool(function) for function in pivot.function_tools(body)]
    choice = pivot.tool_choice(body)
    forced = choice is not None and choice.mode == "required"
    _apply_thinking(
        out,
        body,
        thinking,
        client_max_tokens=max_tokens,
        allowed=not forced and _history_allows_thinking(turns),
    )
    thinking_on = out.get("thinking", {}).get("type") in ("enabled", "adaptive")

    anthropic_choice = _tool_choice(choice, body.get("parallel_tool_calls")) if tools else None
    kind, schema_spec = pivot.response_format(body)
    if kind == "json_object":
        system.append({"type": "text", "text": JSON_OBJECT_INSTRUCTION})
    elif kind == "json_schema" and schema_spec is not None:
        schema = pivot.as_dict(schema_spec.get("schema"))
        if structured_output == "native":
            out.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": schema}
        elif choice is not None and choice.mode == "none":
            system.append(
                {
                    "type": "text",
                    "text": f"{JSON_OBJECT_INSTRUCTION} It must match this JSON schema: "
                    f"{pivot.dump_json(schema)}",
                }
            )
        else:
            name = str(schema_spec.get("name") or "response")
            description = str(
                schema_spec.get("description") or f"Give the final answer ({name}) as this tool's input."
            )
            tools.append(
                {"name": JSON_TOOL, "description": description, "input_schema": _input_schema(schema)}
            )
            if len(tools) == 1 and not thinking_on:
                anthropic_choice = {"type": "tool", "name": JSON_TOOL}
            else:
                system.append({"type": "text", "text": JSON_TOOL_INSTRUCTION})
                anthropic_choice = anthropic_choice or {"type": "auto"}

    if system:
        plain = len(system) == 1 and set(system[0]) == {"type", "text"}
        out["system"] = system[0]["text"] if plain else system
    if tools:
        out["tools"] = tools
        if anthropic_choice is not None:
            out["tool_choice"] = anthropic_choice
    stops = pivot.stop_sequences(body)
    if stops:
        out["stop_sequences"] = stops
    if sampling:
        _apply_sampling(out, body, thinking_on)
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if body.get("stream"):
        out["stream"] = True
    return out


def _apply_sampling(out: dict[str, Any], body: dict[str, Any], thinking_on: bool) -> None:
    """Anthropic's temperature range is 0–1 (OpenAI's 0–2, clamped); recent models refuse
    temperature together with top_p (temperature wins), and extended thinking refuses all three."""
    if thinking_on:
        return
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    elif isinstance(body.get("top_p"), (int, float)):
        out["top_p"] = body["top_p"]
    if isinstance(body.get("top_k"), int):
        out["top_k"] = body["top_k"]


def _apply_thinking(
    out: dict[str, Any],
    body: dict[str, Any],
    style: Literal["budget", "adaptive"],
    *,
    client_max_tokens: int | None,
    allowed: bool,
) -> None:
    """``reasoning_effort`` → extended thinking, when ``allowed``: thinking cannot run with a forced
    tool choice (the forced tool is the app's contract, thinking only quality, so the tool wins), nor
    continue a tool-use loop whose assistant turn has no thinking block (a conversation begun on
    another provider)."""
    native = body.get("thinking")
    if isinstance(native, dict):
        out["thinking"] = native
        return
    effort = body.get("reasoning_effort")
    if not isinstance(effort, str) or effort not in _THINKING_BUDGET or not allowed:
        return
    if style == "adaptive":
        out["thinking"] = {"type": "adaptive"}
        out.setdefault("output_config", {})["effort"] = _ADAPTIVE_EFFORT[effort]
        return
    budget = _THINKING_BUDGET[effort]
    if client_max_tokens is None:
        out["max_tokens"] += budget  # room for thinking on top of the default answer length
    else:
        # OpenAI's max_completion_tokens also bounds reasoning: keep a quarter for the answer
        budget = min(budget, client_max_tokens * 3 // 4)
    if budget >= _MIN_BUDGET:
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _history_allows_thinking(turns: list[dict[str, Any]]) -> bool:
    """Anthropic requires the assistant turn that a pending tool result answers to open with a
    thinking block when thinking is on."""
    if len(turns) < 2 or turns[-1]["role"] != "user" or turns[-2]["role"] != "assistant":
        return True
    results = turns[-1]["content"]
    if isinstance(results, str) or not any(b.get("type") == "tool_result" for b in results):
        return True
    assistant = turns[-2]["content"]
    return not isinstance(assistant, str) and assistant[0].get("type") in ("thinking", "redacted_thinking")


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        tool["description"] = function["description"]
    tool["input_schema"] = _input_schema(function.get("parameters"))
    if isinstance(function.get("cache_control"), dict):
        tool["cache_control"] = function["cache_control"]
    return tool


def _input_schema(parameters: Any) -> dict[str, Any]:
    if not isinstance(parameters, dict) or not parameters:
        return {"type": "object", "properties": {}}
    if "type" not in parameters:
        return {"type": "object", **parameters}
    return parameters


def _tool_choice(choice: pivot.ToolChoice | None, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = {"type": "auto"} if parallel is False else None
    elif choice.mode == "none":
        return {"type": "none"}
    elif choice.name is not None:
        result = {"type": "tool", "name": choice.name}
    else:
        result = {"type": "any" if choice.mode == "required" else "auto"}
    if result is not None and parallel is False:
        result["disable_parallel_tool_use"] = True
    return result


# --- messages ---------------------------------------------------------------------------------


def _convert_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns). System and developer messages go to ``system`` wherever
    they stood; consecutive tool messages (and a user message after them) merge into one user turn."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{position}] must be an object", param=f"messages[{position}]")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content")))
        elif role == "user":
            _append(turns, "user", _user_blocks(message.get("content"), position))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message)])
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message))
        else:
            raise TranslationError(
                f"messages[{position}]: role {role!r} has no Anthropic equivalent",
                param=f"messages[{position}].role",
            )
    for turn in turns:
        if turn["role"] == "user":  # Anthropic wants tool results before anything else in the turn
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    if turns and turns[-1]["role"] == "assistant":
        _strip_prefill(turns[-1]["content"])
    for turn in turns:
        content = turn["content"]
        if len(content) == 1 and set(content[0]) == {"type", "text"}:
            turn["content"] = content[0]["text"]
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _strip_prefill(blocks: list[dict[str, Any]]) -> None:
    """A final assistant message is a prefill; Anthropic rejects one ending in whitespace."""
    if blocks and blocks[-1].get("type") == "text":
        blocks[-1]["text"] = blocks[-1]["text"].rstrip()
        if not blocks[-1]["text"]:
            blocks.pop()


def _text_block(part: dict[str, Any]) -> dict[str, Any] | None:
    text = part.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks = [
        _text_block(part) for part in content or [] if isinstance(part, dict) and part.get("type") == "text"
    ]
    return [block for block in blocks if block is not None]


def _user_blocks(content: Any, position: int) -> list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return _text_blocks(content)
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        block: dict[str, Any] | None
        if kind == "text":
            block = _text_block(part)
        elif kind == "image_url":
            block = _image_block(part)
        elif kind == "file":
            block = _document_block(part)
        else:
            raise TranslationError(
                f"messages[{position}]: content part {kind!r} has no Anthropic equivalent",
                param=f"messages[{position}].content",
            )
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url.url is required", param="messages")
    data = pivot.parse_data_url(url)
    source = (
        {"type": "base64", "media_type": data[0], "data": data[1]} if data else {"type": "url", "url": url}
    )
    block: dict[str, Any] = {"type": "image", "source": source}
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _document_block(part: dict[str, Any]) -> dict[str, Any]:
    file: dict[str, Any] = part["file"] if isinstance(part.get("file"), dict) else {}
    file_data = file.get("file_data")
    if not isinstance(file_data, str):
        raise TranslationError(
            "an OpenAI file_id cannot be read by Anthropic; send file_data", param="messages"
        )
    media_type, data = pivot.parse_data_url(file_data) or ("application/pdf", file_data)
    block: dict[str, Any]
    if media_type == "application/pdf":
        block = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    elif media_type.startswith("text/"):
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidRequest("file_data is not base64 UTF-8 text", param="messages") from exc
        block = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    else:
        raise TranslationError(f"Anthropic cannot read {media_type} files", param="messages")
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def _tool_result(message: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": anthropic_tool_id(message.get("tool_call_id")),
    }
    content = message.get("content")
    if isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "image_url" for p in content
    ):
        block["content"] = _user_blocks(content, 0)
    else:
        text = pivot.content_text(content)
        if text:
            block["content"] = text
    return block


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for saved in message.get(pivot.THINKING_BLOCKS) or []:
        if not isinstance(saved, dict):
            continue
        if saved.get("type") == "thinking" and saved.get("signature"):
            blocks.append(
                {"type": "thinking", "thinking": saved.get("thinking", ""), "signature": saved["signature"]}
            )
        elif saved.get("type") == "redacted_thinking" and saved.get("data"):
            blocks.append({"type": "redacted_thinking", "data": saved["data"]})
    text = pivot.content_text(message.get("content"))
    if text.strip():
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        blocks.append(
            {
                "type": "tool_use",
                "id": anthropic_tool_id(call.get("id")),
                "name": str(function.get("name", "")),
                "input": pivot.parse_arguments(function.get("arguments")),
            }
        )
    return blocks

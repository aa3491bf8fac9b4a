"""An Anthropic client's Messages request → the OpenAI chat-completions body (the pivot): an Anthropic
client (``POST /v1/messages``, the Anthropic SDKs, Claude Code) served by an OpenAI-compatible
upstream, or by any other through the pivot.

The answer goes back through ``client_response`` (whole) and ``client_stream`` (streamed).
Dropped and approximated fields are listed in ``docs/translation.md``.
"""

from __future__ import annotations

from typing import Any, Literal

from tollway.errors import InvalidRequest
from tollway.translate import pivot

# extended-thinking budget → reasoning_effort
_EFFORT_BY_BUDGET = ((4096, "low"), (16384, "medium"))
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def anthropic_to_openai_request(
    body: dict[str, Any],
    *,
    max_tokens_field: Literal["max_completion_tokens", "max_tokens"] = "max_completion_tokens",
    reasoning: bool = False,
) -> dict[str, Any]:
    """The OpenAI chat-completions body for an Anthropic Messages body (the model is left as the
    client named it; the caller swaps in the upstream's). ``reasoning=True`` maps ``thinking`` /
    ``output_config.effort`` to ``reasoning_effort``, for upstreams that accept it."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": _convert_messages(body.get("system"), messages),
    }
    if isinstance(body.get("max_tokens"), int):
        out[max_tokens_field] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if isinstance(body.get(key), (int, float)) and not isinstance(body.get(key), bool):
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    tools = [_tool(tool) for tool in body.get("tools") or [] if _is_client_tool(tool)]
    if tools:
        out["tools"] = tools
        _apply_tool_choice(out, body.get("tool_choice"))
    output_config = pivot.as_dict(body.get("output_config"))
    fmt = output_config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": fmt.get("schema")},
        }
    if reasoning:
        effort = _reasoning_effort(body.get("thinking"), output_config.get("effort"))
        if effort is not None:
            out["reasoning_effort"] = effort
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}  # the closing message_delta needs usage
    return out


def _reasoning_effort(thinking: Any, effort: Any) -> str | None:
    if isinstance(effort, str) and effort in _EFFORT:
        return _EFFORT[effort]
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return next((name for limit, name in _EFFORT_BY_BUDGET if budget <= limit), "high")


def _is_client_tool(tool: Any) -> bool:
    """Client tools (``custom``, or no type) translate; Anthropic's server and built-in tools
    (web search, bash, text editor, computer use) have no OpenAI equivalent and are left out."""
    return (
        isinstance(tool, dict) and tool.get("type") in (None, "custom") and isinstance(tool.get("name"), str)
    )


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _apply_tool_choice(out: dict[str, Any], choice: Any) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False


# --- messages ---------------------------------------------------------------------------------


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(
            str(b.get("text", "")) for b in system if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _convert_messages(system: Any, messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    text = _system_text(system)
    if text:
        out.append({"role": "system", "content": text})
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{position}] must be an object", param=f"messages[{position}]")
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if role == "assistant":
            out.append(_assistant_message(blocks))
        elif role == "system":
            out.append({"role": "system", "content": _system_text(content)})
        else:
            out.extend(_user_messages(blocks))
    return out


def _user_messages(blocks: list[Any]) -> list[dict[str, Any]]:
    """One Anthropic user turn → its tool results as ``tool`` messages (OpenAI wants them right after
    the assistant's tool calls), then the rest as one user message."""
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_result":
            text, images = _tool_result_content(block.get("content"))
            if block.get("is_error"):
                text = f"[tool error] {text}"
            tool_messages.append(
                {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")), "content": text}
            )
            parts.extend(images)  # OpenAI tool messages carry text only
        else:
            part = _user_part(block)
            if part is not None:
                parts.append(part)
    out = tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _tool_result_content(content: Any) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "image":
            part = _user_part(block)
            if part is not None:
                images.append(part)
    return "\n".join(texts), images


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    kind = block.get("type")
    source = pivot.as_dict(block.get("source"))
    if kind == "text":
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind == "image":
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
        else:
            url = str(source.get("url", ""))
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "document":
        if source.get("type") == "text":
            return {"type": "text", "text": str(source.get("data", ""))}
        if source.get("type") == "base64":
            file_data = f"data:{source.get('media_type', 'application/pdf')};base64,{source.get('data', '')}"
            return {
                "type": "file",
                "file": {"filename": str(block.get("title") or "document.pdf"), "file_data": file_data},
            }
    return None  # search results, container uploads, thinking in a user turn: nothing to send


def _assistant_message(blocks: list[Any]) -> dict[str, Any]:
    """Text and tool calls. Thinking blocks are dropped: an OpenAI upstream cannot verify Anthropic's
    signatures, and OpenAI's API has no input field for reasoning."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                pivot.tool_call(
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    pivot.dump_json(block.get("input") or {}),
                )
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message

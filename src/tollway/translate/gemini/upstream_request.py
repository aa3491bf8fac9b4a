"""The OpenAI chat-completions body (the pivot) → the Gemini ``generateContent`` request an upstream
Gemini is sent: an OpenAI client, or any client through the pivot, served by Gemini.

``openai_to_gemini_request`` builds the body; the model and the choice between
``:generateContent`` and ``:streamGenerateContent?alt=sse`` go in the URL, which the provider builds.
``upstream_response`` turns the answer back into the pivot. Dropped and approximated fields are
listed in ``docs/translation.md``.

Thought signatures: a tool call's ``extra_content.google.thought_signature`` goes back on its
``functionCall`` part, a message's on its last text part. Gemini 3 refuses a model turn whose
function calls carry no signature, which is what a conversation begun on another provider (a
failover) or by a client that dropped the field looks like; such a turn gets Google's documented
placeholder signature on its first function call so the conversation can go on.
"""

from __future__ import annotations

from typing import Any, Literal

from tollway.errors import InvalidRequest, TranslationError
from tollway.translate import pivot
from tollway.translate.gemini.schema import gemini_schema

PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5

# reasoning_effort → thinkingBudget (Gemini 2.5) or thinkingLevel (Gemini 3 and later)
_BUDGET = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 24576,
    "max": 24576,
}
_LEVEL = {
    "none": "minimal",
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "xhigh",
}


def openai_to_gemini_request(
    body: dict[str, Any],
    upstream_model: str,
    *,
    thinking: Literal["auto", "budget", "level"] = "auto",
    json_schema: Literal["subset", "native"] = "subset",
) -> dict[str, Any]:
    """The Gemini ``generateContent`` body for an OpenAI chat-completions body. ``upstream_model``
    only decides, with ``thinking="auto"``, whether ``reasoning_effort`` becomes a thinking budget
    (``gemini-2*``) or a thinking level. ``json_schema`` chooses how tool parameters and a
    ``json_schema`` response format are sent: rewritten into Gemini's OpenAPI subset
    (``parameters`` / ``responseSchema``, every Gemini version) or as the client's JSON Schema
    (``parametersJsonSchema`` / ``responseJsonSchema``)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list", param="messages")
    system, contents = _convert_messages(messages)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}

    functions = pivot.function_tools(body)
    if functions:
        native = json_schema == "native"
        out["tools"] = [{"functionDeclarations": [_declaration(f, native=native) for f in functions]}]
        choice = pivot.tool_choice(body)
        if choice is not None:
            config: dict[str, Any] = {
                "mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice.mode]
            }
            if choice.name is not None:
                config["allowedFunctionNames"] = [choice.name]
            out["toolConfig"] = {"functionCallingConfig": config}

    generation = _generation_config(body, native_schema=json_schema == "native")
    style = (
        thinking if thinking != "auto" else ("budget" if upstream_model.startswith("gemini-2") else "level")
    )
    effort = body.get("reasoning_effort")
    if isinstance(effort, str) and effort in _BUDGET:
        if style == "budget":
            generation["thinkingConfig"] = {"thinkingBudget": _BUDGET[effort]}
        else:
            generation["thinkingConfig"] = {"thinkingLevel": _LEVEL[effort]}
        if effort != "none":
            generation["thinkingConfig"]["includeThoughts"] = True
    if generation:
        out["generationConfig"] = generation
    return out


def _generation_config(body: dict[str, Any], *, native_schema: bool) -> dict[str, Any]:
    config: dict[str, Any] = {}
    numeric = {
        "temperature": "temperature",  # same 0–2 range as OpenAI
        "top_p": "topP",
        "top_k": "topK",
        "seed": "seed",
        "presence_penalty": "presencePenalty",
        "frequency_penalty": "frequencyPenalty",
    }
    for key, name in numeric.items():
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            config[name] = value
    max_tokens = pivot.max_output_tokens(body)
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stops = pivot.stop_sequences(body)
    if stops:
        config["stopSequences"] = stops[:MAX_STOP_SEQUENCES]
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        config["candidateCount"] = n
    kind, schema_spec = pivot.response_format(body)
    if kind in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if kind == "json_schema" and schema_spec is not None and isinstance(schema_spec.get("schema"), dict):
        if native_schema:
            config["responseJsonSchema"] = schema_spec["schema"]
        else:
            config["responseSchema"] = gemini_schema(schema_spec["schema"])
    return config


def _declaration(function: dict[str, Any], *, native: bool) -> dict[str, Any]:
    declaration: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if native:
        if pivot.as_dict(function.get("parameters")).get("properties"):
            declaration["parametersJsonSchema"] = function["parameters"]
        return declaration
    parameters = gemini_schema(function.get("parameters"))
    if parameters.get("properties"):  # Gemini rejects an OBJECT with no properties
        declaration["parameters"] = parameters
    return declaration


# --- messages ---------------------------------------------------------------------------------


def _convert_messages(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(systemInstruction parts, contents). Consecutive same-role turns are merged: consecutive tool
    messages become one user turn of ``functionResponse`` parts."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool-call id → function name, for functionResponse.name
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{position}] must be an object", param=f"messages[{position}]")
        role = message.get("role")
        if role in ("system", "developer"):
            text = pivot.content_text(message.get("content"), separator="\n")
            if text:
                system.append({"text": text})
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content"), position))
        elif role == "assistant":
            _append(contents, "model", _model_parts(message, names))
        elif role == "tool":
            _append(contents, "user", [_function_response(message, names)])
        else:
            raise TranslationError(
                f"messages[{position}]: role {role!r} has no Gemini equivalent",
                param=f"messages[{position}].role",
            )
    return system, contents


def _append(contents: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _user_parts(content: Any, position: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": str(part["text"])})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise InvalidRequest("image_url.url is required", param=f"messages[{position}].content")
            parts.append(_media_part(url))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = f"audio/{audio.get('format', 'wav')}"
            parts.append({"inlineData": {"mimeType": mime, "data": str(audio.get("data", ""))}})
        elif kind == "file":
            file = pivot.as_dict(part.get("file"))
            if not isinstance(file.get("file_data"), str):
                raise TranslationError(
                    "an OpenAI file_id cannot be read by Gemini; send file_data",
                    param=f"messages[{position}].content",
                )
            parts.append(_media_part(file["file_data"], default_type="application/pdf"))
        else:
            raise TranslationError(
                f"messages[{position}]: content part {kind!r} has no Gemini equivalent",
                param=f"messages[{position}].content",
            )
    return parts


def _media_part(url: str, *, default_type: str | None = None) -> dict[str, Any]:
    data = pivot.parse_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": data[0], "data": data[1]}}
    if default_type is not None and not url.startswith(("http://", "https://", "gs://")):
        return {"inlineData": {"mimeType": default_type, "data": url}}  # bare base64 file_data
    file_data: dict[str, Any] = {"fileUri": url}
    media_type = pivot.guess_media_type(url)
    if media_type is not None:
        file_data["mimeType"] = media_type
    return {"fileData": file_data}


def _model_parts(message: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = pivot.content_text(message.get("content"))
    if text:
        part: dict[str, Any] = {"text": text}
        signature = pivot.google_signature(message)
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    calls: list[dict[str, Any]] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name", ""))
        if call.get("id"):
            names[str(call["id"])] = name
        call_part: dict[str, Any] = {
            "functionCall": {"name": name, "args": pivot.parse_arguments(function.get("arguments"))}
        }
        signature = pivot.google_signature(call)
        if signature is not None:
            call_part["thoughtSignature"] = signature
        calls.append(call_part)
    if calls and not any("thoughtSignature" in c for c in calls):
        calls[0]["thoughtSignature"] = PLACEHOLDER_SIGNATURE
    return parts + calls


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Gemini wants an object as the response: a JSON object result is passed as is, anything else
    is wrapped as ``{"result": ...}``."""
    call_id = str(message.get("tool_call_id", ""))
    name = names.get(call_id) or str(message.get("name") or "tool")
    text = pivot.content_text(message.get("content"))
    parsed = pivot.parse_arguments(text)
    response: dict[str, Any] = parsed if text.strip() and "_raw_arguments" not in parsed else {"result": text}
    return {"functionResponse": {"name": name, "response": response}}

"""Gemini's ``generateContent`` API for the mock, under ``/v1beta/models/`` and ``/v1/models/``.

Routes: ``POST {version}/models/{model}:generateContent``, ``:streamGenerateContent`` (SSE with
``?alt=sse``, otherwise one JSON array of the chunks, as the API does), ``:countTokens``, and
``:embedContent`` / ``:batchEmbedContents`` (deterministic unit vectors of ``outputDimensionality``
or 768 numbers; every request in a batch must name the URL's model, as the API insists; no usage,
as the API reports none). The API key comes from ``x-goog-api-key`` or ``?key=``; a wrong one gets
the API's own answer, a 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID`` (not a 401). Bodies
follow the REST reference and the ``google-genai`` SDK's types. Where the real API allows variants,
the mock picks the shape that trips translators:

- SSE events are ``data: {GenerateContentResponse}\\r\\n\\r\\n``: CRLF line endings, no ``event:``
  lines, no ``[DONE]``; text arrives a few words per chunk, function calls whole in one chunk, the
  last chunk carries ``finishReason`` and the complete ``usageMetadata`` (earlier ones only the
  prompt's); ``[[mock:stream_error]]`` ends the stream with an ``{"error": ...}`` chunk (503);
- function calls finish with ``STOP`` (not a tool-call reason) and carry no ``id``; the first
  ``functionCall`` part carries a ``thoughtSignature``, which ``gemini-3*`` models require back on
  the first call of each model turn since the last user text (missing: 400);
- usage: ``promptTokenCount`` INCLUDES ``cachedContentTokenCount`` (quirk ``cached_tokens``), thoughts
  are OUTSIDE ``candidatesTokenCount`` (quirk ``reasoning_tokens`` -> ``thoughtsTokenCount``, plus the
  thought summary's tokens when ``thinkingConfig.includeThoughts`` adds a ``{"text", "thought":
  true}`` part), and zero counts are omitted, as proto3 JSON does; quirk ``no_usage`` drops
  ``usageMetadata`` from stream chunks;
- ``maxOutputTokens`` is spent on thoughts first: a budget they exhaust gives ``MAX_TOKENS`` and a
  candidate whose content has no ``parts`` at all;
- requests are checked where translators slip, with 400 ``INVALID_ARGUMENT``: roles, empty parts,
  unknown fields in parts, ``generationConfig`` and schemas (Gemini's schema is an OpenAPI subset:
  ``additionalProperties``, ``$ref``... are refused), function names, temperature 0..2.

Prompt tokens are counted over the OpenAI-shaped view of the request, so a plain conversation
costs what it costs at the OpenAI mock.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from aiohttp import web

from tollway.mock import content
from tollway.mock.content import Answer, Ask, ToolSpec
from tollway.mock.faults import Plan, Quirks, send_body, send_stream
from tollway.mock.state import MockState

VERSIONS = ("v1beta", "v1")
TEXT_PIECES_PER_CHUNK = 4  # Gemini streams a few words per chunk, not one token
STREAM_ERROR_AFTER = 2  # [[mock:stream_error]]: chunks sent before the error chunk
MAX_CANDIDATES = 8
MAX_STOP_SEQUENCES = 5
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_KEY_INVALID = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
]
_FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}")
_CAMEL = re.compile(r"(?<!^)([A-Z])")


def _snake(camel: str) -> str:
    return _CAMEL.sub(r"_\1", camel).lower()


def _names(*camel: str) -> frozenset[str]:
    """Field names as the API's JSON parser accepts them: lowerCamel and snake_case alike."""
    return frozenset(camel) | {_snake(name) for name in camel}


_BODY_FIELDS = _names(
    "model", "contents", "tools", "toolConfig", "safetySettings", "systemInstruction",
    "generationConfig", "cachedContent", "labels", "serviceTier", "store",
)  # fmt: skip
_PART_DATA = _names(
    "text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
    "codeExecutionResult",
)  # fmt: skip
_PART_FIELDS = _PART_DATA | _names(
    "thought", "thoughtSignature", "videoMetadata", "mediaResolution", "partMetadata"
)
_CONFIG_FIELDS = _names(
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
    "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
    "thinkingConfig", "imageConfig", "mediaResolution",
)  # fmt: skip
_SCHEMA_FIELDS = _names(
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
    "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
)  # fmt: skip
_SCHEMA_TYPES = frozenset(
    {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL", "TYPE_UNSPECIFIED"}
)

JSON = dict[str, Any]  # a decoded wire object, read only inside this module's parsers
Method = Literal[
    "generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"
]
_METHODS: tuple[Method, ...] = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
)
_EMBED_FIELDS = _names("model", "content", "taskType", "title", "outputDimensionality")
_TASK_TYPES = frozenset(
    {
        "TASK_TYPE_UNSPECIFIED",
        "RETRIEVAL_QUERY",
        "RETRIEVAL_DOCUMENT",
        "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",
        "CLUSTERING",
        "QUESTION_ANSWERING",
        "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY",
    }
)
EMBEDDING_DIMENSIONS = 768


class BadRequest(Exception):
    """A request the API refuses with 400 ``INVALID_ARGUMENT``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def status_name(status: int) -> str:
    return _STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "INVALID_ARGUMENT")


def error_body(status: int, message: str, details: list[JSON] | None = None) -> JSON:
    error: JSON = {"code": status, "message": message, "status": status_name(status)}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    """Google's envelope: {"error": {"code", "message", "status"[, "details"]}}."""
    details = None
    if code == "invalid_api_key":  # what Google answers a bad key with
        status, message, details = 400, "API key not valid. Please pass a valid API key.", _KEY_INVALID
    body = orjson.dumps(error_body(status, message, details))
    return web.Response(status=status, body=body, content_type="application/json")


def api_key(request: web.Request) -> str | None:
    return request.headers.get("x-goog-api-key") or request.query.get("key")


def register(app: web.Application, state: MockState) -> None:
    api = GeminiMock(state)
    for version in VERSIONS:
        app.router.add_post(f"/{version}/models/{{target}}", api.call)


class GeminiMock:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def call(self, request: web.Request) -> web.StreamResponse:
        model, _, name = request.match_info["target"].rpartition(":")
        method = next((m for m in _METHODS if m == name), None)
        if method is None or not model:
            self.state.stats.record(request.path, None)
            return error_response(404, f"The requested URL {request.path} was not found on this server.")
        body, problem = _load(await request.read())
        if method == "countTokens" and isinstance(body.get("generateContentRequest"), dict):
            body = body["generateContentRequest"]
        embedding = method in ("embedContent", "batchEmbedContents")
        prompt = _embed_prompt(body) if embedding else _last_user_text(body)
        plan = await self.state.admit(request, model=model, prompt=prompt, reject=error_response, key=api_key)
        if not isinstance(plan, Plan):
            return plan
        if not self.state.knows_model(model):
            version = request.path.split("/")[1]
            return error_response(
                404,
                f"models/{model} is not found for API version {version}, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their supported methods.",
            )
        if embedding:
            try:
                if problem is not None:
                    raise problem
                answer = _embeddings(model, body) if method == "batchEmbedContents" else _embedding(body, "")
            except BadRequest as exc:
                return error_response(400, exc.message)
            return await send_body(request, orjson.dumps(answer), plan)
        try:
            job = _parse(model, body, problem, plan)
        except BadRequest as exc:
            return error_response(400, exc.message)
        if method == "countTokens":
            counted = {"totalTokens": job.prompt_tokens, "promptTokensDetails": _modality(job.prompt_tokens)}
            return await send_body(request, orjson.dumps(counted), plan)
        reply = _reply(job, plan.quirks)
        if method == "generateContent":
            return await send_body(request, orjson.dumps(_response(job, reply, plan.quirks)), plan)
        return await _send_chunks(request, _chunks(job, reply, plan.quirks), plan)


async def _send_chunks(request: web.Request, chunks: list[JSON], plan: Plan) -> web.StreamResponse:
    """``streamGenerateContent``: SSE with ``alt=sse``, otherwise the chunks as one JSON array."""
    if request.query.get("alt") != "sse":
        return await send_body(request, b"[" + b",\r\n".join(map(orjson.dumps, chunks)) + b"]", plan)
    events = [b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks]
    body_events = len(events) - 1  # the last chunk finishes the answer
    if plan.stream_error:
        events = events[: min(STREAM_ERROR_AFTER, body_events)]
        failure = error_body(503, "The model is overloaded. Please try again later.")
        events.append(b"data: " + orjson.dumps(failure) + b"\r\n\r\n")
        body_events = len(events)
    return await send_stream(request, events, body_events, plan)


# ---- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    model: str
    prompt_tokens: int
    ask: Ask
    max_tokens: int | None
    candidates: int
    include_thoughts: bool
    stop_sequences: tuple[str, ...]


def _embed_prompt(body: JSON) -> str:
    """The last text of an embedding request: where a ``[[mock:…]]`` directive would be."""
    requests = body.get("requests")
    one = requests[-1] if isinstance(requests, list) and requests and isinstance(requests[-1], dict) else body
    return _text(_parts(one.get("content")))


def _embeddings(model: str, body: JSON) -> JSON:
    """``batchEmbedContents``: ``{"requests": [EmbedContentRequest…]}``.

    Answers ``{"embeddings": [{"values"}…]}``.
    """
    _check_fields(body, _names("requests"), "")
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise BadRequest("* BatchEmbedContentsRequest.requests: contents is not specified")
    vectors = []
    for i, one in enumerate(requests):
        if not isinstance(one, dict):
            raise BadRequest(f"Invalid value at 'requests[{i}]': expected an EmbedContentRequest object.")
        named = one.get("model")
        if named != f"models/{model}":
            raise BadRequest(
                f"Model name in request [{i}] ({named}) does not match the batch model models/{model}."
            )
        vectors.append(_embedding(one, f"requests[{i}]")["embedding"])
    return {"embeddings": vectors}


def _embedding(one: JSON, where: str) -> JSON:
    """``embedContent``: ``{content, taskType?, title?, outputDimensionality?}``.

    Answers ``{"embedding": {"values"}}``.
    """
    _check_fields(one, _EMBED_FIELDS, where)
    parts = _parts(one.get("content"))
    if not parts or any(set(p) != {"text"} or not isinstance(p["text"], str) for p in parts):
        raise BadRequest(f"* {where or 'EmbedContentRequest'}.content.parts: text parts only, at least one")
    task = _get(one, "taskType")
    if task is not None and task not in _TASK_TYPES:
        raise BadRequest(f"Invalid value at '{where + '.' if where else ''}task_type': \"{task}\"")
    dims = _get(one, "outputDimensionality")
    if dims is None:
        dims = EMBEDDING_DIMENSIONS
    elif not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 3072:
        raise BadRequest("* outputDimensionality must be between 1 and 3072")
    return {"embedding": {"values": list(content.embedding(_text(parts), dims))}}


def _load(raw: bytes) -> tuple[JSON, BadRequest | None]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return {}, BadRequest(f"Invalid JSON payload received. {exc}")
    if not isinstance(value, dict):
        return {}, BadRequest("Invalid JSON payload received. Expected an object.")
    return value, None


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    """A field by its lowerCamel name or its snake_case one."""
    return obj[camel] if camel in obj else obj.get(_snake(camel))


def _unknown(name: str, where: str) -> BadRequest:
    at = f" at '{where}'" if where else ""
    return BadRequest(f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.')


def _check_fields(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in allowed:
            raise _unknown(name, where)


def _parts(content: object) -> list[JSON]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text(parts: Iterable[JSON]) -> str:
    return " ".join(p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))


def _last_user_text(body: JSON) -> str:
    """The text of the last user content that has any: a turn of bare functionResponse parts is
    skipped, as the OpenAI mock skips ``tool`` messages."""
    contents = body.get("contents")
    if isinstance(contents, list):
        for item in reversed(contents):
            if (
                isinstance(item, dict)
                and item.get("role", "user") == "user"
                and (text := _text(_parts(item)))
            ):
                return text
    return ""


def _parse(model: str, body: JSON, problem: BadRequest | None, plan: Plan) -> _Job:
    if problem is not None:
        raise problem
    _check_fields(body, _BODY_FIELDS, "")
    contents = _contents(body.get("contents"), model)
    system = _get(body, "systemInstruction")
    if system is not None:
        if not isinstance(system, dict) or not isinstance(system.get("parts"), list):
            raise BadRequest("* GenerateContentRequest.system_instruction: must be a Content with parts")
        _check_parts(system["parts"], "system_instruction")
    tools, counted = _tools(body.get("tools"))
    mode, allowed = _function_calling(_get(body, "toolConfig"), tools)
    config = _get(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise BadRequest("Invalid value at 'generation_config': expected an object")
    _check_fields(config, _CONFIG_FIELDS, "generation_config")
    max_tokens = _positive(config, "maxOutputTokens")
    candidates = _positive(config, "candidateCount") or 1
    if candidates > MAX_CANDIDATES:
        raise BadRequest(f"* GenerationConfig.candidate_count: must be at most {MAX_CANDIDATES}")
    temperature = _get(config, "temperature")
    if temperature is not None and (not isinstance(temperature, int | float) or not 0 <= temperature <= 2):
        raise BadRequest("* GenerationConfig.temperature: must be in the range [0.0, 2.0]")
    stops = _get(config, "stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("Invalid value at 'generation_config.stop_sequences': expected a list of strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise BadRequest(f"* GenerationConfig.stop_sequences: at most {MAX_STOP_SEQUENCES} are allowed")
    thinking = _get(config, "thinkingConfig") or {}
    last_is_results = (
        bool(contents)
        and not _text(_parts(contents[-1]))
        and any(_get(p, "functionResponse") is not None for p in _parts(contents[-1]))
    )
    ask = Ask(
        prompt=plan.prompt,
        words=plan.words,
        tools=tools,
        tool_name=allowed[0] if mode == "ANY" and allowed else None,
        call_tools=bool(tools) and (mode == "ANY" or (mode != "NONE" and not last_is_results)),
        parallel_tools=plan.parallel_tools,
        json_object=_get(config, "responseMimeType") == "application/json",
        json_schema=_response_schema(config),
    )
    view: list[object] = [{"role": "system", "content": system["parts"]}] if system else []
    view += [
        {"role": "assistant" if c.get("role") == "model" else "user", "content": c["parts"]} for c in contents
    ]
    return _Job(
        model=model,
        prompt_tokens=content.count_prompt_tokens(view, counted),
        ask=ask,
        max_tokens=max_tokens,
        candidates=candidates,
        include_thoughts=isinstance(thinking, dict)
        and _get(thinking, "includeThoughts") is True
        and _get(thinking, "thinkingBudget") != 0,
        stop_sequences=tuple(stops),
    )


def _positive(config: JSON, camel: str) -> int | None:
    value = _get(config, camel)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"* GenerationConfig.{_snake(camel)}: must be a positive integer")
    return value


def _contents(contents: object, model: str) -> list[JSON]:
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    turn_start = 0  # the current turn starts at the last user content with text
    for i, item in enumerate(contents):
        if not isinstance(item, dict):
            raise BadRequest(f"Invalid value at 'contents[{i}]': expected a Content object")
        if item.get("role", "user") not in ("user", "model", "function"):
            raise BadRequest("Please use a valid role: user, model.")
        parts = item.get("parts")
        if not isinstance(parts, list) or not parts:
            raise BadRequest(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        _check_parts(parts, f"contents[{i}]")
        if item.get("role", "user") == "user" and _text(_parts(item)):
            turn_start = i
    if model.startswith("gemini-3"):
        for i, item in enumerate(contents[turn_start:], turn_start):
            calls = [p for p in _parts(item) if _get(p, "functionCall") is not None]
            if item.get("role") == "model" and calls and not _get(calls[0], "thoughtSignature"):
                raise BadRequest(
                    f"Function call is missing a thought_signature in functionCall parts (contents[{i}]). "
                    "See https://ai.google.dev/gemini-api/docs/thought-signatures"
                )
    return contents


def _check_parts(parts: list[object], where: str) -> None:
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise BadRequest(f"Invalid value at '{at}': expected a Part object")
        _check_fields(part, _PART_FIELDS, at)
        data = [name for name in part if name in _PART_DATA]
        if len(data) != 1:
            raise BadRequest(
                f"* GenerateContentRequest.{at}.data: "
                "required oneof field 'data' must have one initialized field"
            )
        call = _get(part, "functionCall")
        if call is not None and not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            raise BadRequest(f"* GenerateContentRequest.{at}.function_call.name: Name is required")
        answer = _get(part, "functionResponse")
        if answer is not None and not (
            isinstance(answer, dict)
            and isinstance(answer.get("name"), str)
            and isinstance(answer.get("response"), dict)
        ):
            raise BadRequest(
                f"* GenerateContentRequest.{at}.function_response: name and an object response are required"
            )


def _tools(tools: object) -> tuple[tuple[ToolSpec, ...], list[object]]:
    """The declared functions, and each as the OpenAI mock would count it."""
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise BadRequest("Invalid value at 'tools': expected a list")
    specs: list[ToolSpec] = []
    counted: list[object] = []
    for i, tool in enumerate(tools):
        declarations = _get(tool, "functionDeclarations") if isinstance(tool, dict) else None
        for j, declaration in enumerate(declarations if isinstance(declarations, list) else []):
            where = f"tools[{i}].function_declarations[{j}]"
            name = declaration.get("name") if isinstance(declaration, dict) else None
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                raise BadRequest(
                    f"* GenerateContentRequest.{where}.name: "
                    "Invalid function name. Must start with a letter or "
                    "an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), "
                    "dots (.), colons (:), or dashes (-), with a maximum length of 64."
                )
            schema = _get(declaration, "parametersJsonSchema")
            if schema is None and (schema := _get(declaration, "parameters")) is not None:
                _check_schema(schema, f"{where}.parameters")
            parameters = _lower_types(schema) if isinstance(schema, dict) else {}
            specs.append(ToolSpec(name, parameters))
            function = {
                "name": name,
                "description": declaration.get("description", ""),
                "parameters": parameters,
            }
            counted.append({"type": "function", "function": function})
    return tuple(specs), counted


def _function_calling(config: object, tools: Sequence[ToolSpec]) -> tuple[str, list[str]]:
    calling = _get(config, "functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return "AUTO", []
    mode = calling.get("mode", "AUTO")
    if mode not in ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"):
        raise BadRequest(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode!r})")
    allowed = _get(calling, "allowedFunctionNames") or []
    declared = {tool.name for tool in tools}
    if not isinstance(allowed, list) or any(name not in declared for name in allowed):
        raise BadRequest(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "every name must be a declared function"
        )
    return str(mode), [str(name) for name in allowed]


def _check_schema(schema: object, where: str) -> None:
    """Gemini's ``Schema`` is an OpenAPI subset that refuses what it does not know."""
    if not isinstance(schema, dict):
        raise BadRequest(f"Invalid value at '{where}': expected a Schema object")
    _check_fields(schema, _SCHEMA_FIELDS, where)
    kind = schema.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in _SCHEMA_TYPES):
        raise BadRequest(
            f"Invalid value at '{where}.type' "
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.Type), "
            f"{orjson.dumps(kind).decode()}"
        )
    properties = schema.get("properties")
    for name, sub in properties.items() if isinstance(properties, dict) else ():
        _check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for k, sub in enumerate(_get(schema, "anyOf") or []):
        _check_schema(sub, f"{where}.any_of[{k}]")


def _lower_types(schema: object) -> Any:
    """A Gemini schema (``"type": "OBJECT"``) as the JSON schema content.sample_value reads."""
    if isinstance(schema, dict):
        return {
            k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _response_schema(config: JSON) -> JSON | None:
    schema = _get(config, "responseJsonSchema")
    if schema is None and (schema := _get(config, "responseSchema")) is not None:
        _check_schema(schema, "generation_config.response_schema")
    if schema is not None and _get(config, "responseMimeType") != "application/json":
        raise BadRequest(
            "* GenerationConfig.response_schema: only supported with response_mime_type application/json"
        )
    return _lower_types(schema) if isinstance(schema, dict) else None


# ---- the answer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reply:
    thought: str  # the thought summary ("" when not asked for, or cut)
    answer: Answer
    text: str  # the answer's text after stop sequences
    finish: str
    candidates_tokens: int  # per candidate
    thoughts_tokens: int


def _reply(job: _Job, quirks: Quirks) -> _Reply:
    thought = _thought_text(job.ask.prompt) if job.include_thoughts else ""
    budget = job.max_tokens
    if budget is not None and thought and content.count_tokens(thought) > budget:
        thought = ""  # the thinking used the budget up: no summary, no answer
        budget = 0
    elif budget is not None:
        budget -= content.count_tokens(thought)
    answer = content.answer(replace(job.ask, max_tokens=budget))
    text = answer.text or ""
    found = [(text.find(s), s) for s in job.stop_sequences if s and s in text]
    if found:
        text = text[: min(found)[0]]
    finish = "MAX_TOKENS" if answer.finish == "length" and not found else "STOP"
    tokens = answer.completion_tokens if answer.tool_calls or not found else content.count_tokens(text)
    thoughts = quirks.reasoning_tokens + content.count_tokens(thought)
    return _Reply(thought, answer, text, finish, tokens, thoughts)


def _thought_text(prompt: str) -> str:
    topic = " ".join(prompt.split()[:8]) or "an empty message"
    return f"**Answering plainly**\n\nMock thinking about: {topic}. A short, plain answer will do."


def _signature(name: str, args: str) -> str:
    digest = hashlib.blake2b(f"tollway-mock/gemini\0{name}\0{args}".encode(), digest_size=48).digest()
    return base64.b64encode(digest).decode()


def _call_parts(answer: Answer) -> list[JSON]:
    parts: list[JSON] = []
    for call in answer.tool_calls:
        part: JSON = {"functionCall": {"name": call.name, "args": orjson.loads(call.arguments)}}
        if not parts:
            part["thoughtSignature"] = _signature(call.name, call.arguments)
        parts.append(part)
    return parts


def _modality(tokens: int) -> list[JSON]:
    return [{"modality": "TEXT", "tokenCount": tokens}]


def _usage(job: _Job, reply: _Reply, quirks: Quirks, *, final: bool = True) -> JSON:
    prompt = job.prompt_tokens
    candidates = reply.candidates_tokens * job.candidates if final else 0
    thoughts = reply.thoughts_tokens if final else 0
    usage: JSON = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "cachedContentTokenCount": min(quirks.cached_tokens, prompt),
        "promptTokensDetails": _modality(prompt),
        "thoughtsTokenCount": thoughts,
    }
    return {key: value for key, value in usage.items() if value != 0}  # proto3 JSON omits zeros


def _candidates(job: _Job, parts: list[JSON], finish: str | None) -> list[JSON]:
    body: JSON = {"role": "model", "parts": parts} if parts else {"role": "model"}
    candidate: JSON = {"content": body}
    if finish is not None:
        candidate["finishReason"] = finish
    return [{**candidate, "index": i} for i in range(job.candidates)]


def _response(job: _Job, reply: _Reply, quirks: Quirks) -> JSON:
    parts: list[JSON] = [{"text": reply.thought, "thought": True}] if reply.thought else []
    if reply.answer.tool_calls:
        parts += _call_parts(reply.answer)
    elif reply.text:
        parts.append({"text": reply.text})
    return _envelope(job, _candidates(job, parts, reply.finish), _usage(job, reply, quirks))


def _envelope(job: _Job, candidates: list[JSON], usage: JSON | None, response_id: str | None = None) -> JSON:
    response: JSON = {"candidates": candidates}
    if usage is not None:
        response["usageMetadata"] = usage
    response["modelVersion"] = job.model
    response["responseId"] = response_id or _response_id()
    return response


def _response_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _chunks(job: _Job, reply: _Reply, quirks: Quirks) -> list[JSON]:
    """The stream's responses: thought, text a few words at a time or the calls whole; the last
    one finishes and carries the complete usage."""
    groups: list[list[JSON]] = []
    if reply.thought:
        groups.append([{"text": reply.thought, "thought": True}])
    if reply.answer.tool_calls:
        groups.append(_call_parts(reply.answer))
    elif reply.text:
        pieces = reply.answer.pieces if reply.text == reply.answer.text else (reply.text,)
        step = TEXT_PIECES_PER_CHUNK
        groups += [[{"text": "".join(pieces[i : i + step])}] for i in range(0, len(pieces), step)]
    groups = groups or [[]]
    response_id = _response_id()
    partial = None if quirks.no_usage else _usage(job, reply, quirks, final=False)
    final = None if quirks.no_usage else _usage(job, reply, quirks)
    chunks = [_envelope(job, _candidates(job, parts, None), partial, response_id) for parts in groups[:-1]]
    chunks.append(_envelope(job, _candidates(job, groups[-1], reply.finish), final, response_id))
    return chunks

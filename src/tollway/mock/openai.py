"""OpenAI's wire format for the mock: /v1/chat/completions, /v1/embeddings, /v1/models.

Bodies follow the schemas of OpenAI's OpenAPI description (CreateChatCompletionResponse,
CreateChatCompletionStreamResponse, CreateEmbeddingResponse, ListModelsResponse, ErrorResponse);
the tests validate them against it and parse them with the official SDK.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tollway.mock import content
from tollway.mock.content import Answer, Ask, ToolSpec
from tollway.mock.faults import Plan, Quirks, send_body, send_stream
from tollway.mock.state import MockState

MODEL_CREATED = 1_700_000_000
SYSTEM_FINGERPRINT = "fp_tollwaymock"
EMBEDDING_DIMENSIONS = 1536
WIDE_EMBEDDING_MODELS = {"text-embedding-3-large": 3072}
ARGUMENT_FRAGMENTS = 3  # a streamed tool call's arguments arrive in about this many pieces
_DONE = b"data: [DONE]\n\n"
_RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})

JSON = dict[str, Any]  # a decoded wire object, read only inside this module's parsers


class BadRequest(Exception):
    """A request OpenAI would refuse with 400; ``param`` and ``code`` as OpenAI fills them."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def response(self) -> web.Response:
        return error_response(400, self.message, self.code, param=self.param)


def error_response(
    status: int, message: str, code: str | None = None, *, param: str | None = None
) -> web.Response:
    """OpenAI's error envelope: {"error": {"message", "type", "param", "code"}}."""
    if status == 429:
        kind, code = "requests", code or "rate_limit_exceeded"
    elif status >= 500:
        kind = "server_error"
    else:
        kind = "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def model_not_found(model: str) -> web.Response:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return error_response(404, message, "model_not_found")


def register(app: web.Application, state: MockState) -> None:
    api = OpenAIMock(state)
    app.router.add_post("/v1/chat/completions", api.chat)
    app.router.add_post("/v1/embeddings", api.embeddings)
    app.router.add_get("/v1/models", api.models)
    app.router.add_get("/v1/models/{model}", api.model)


class OpenAIMock:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, problem = _load(await request.read())
        model = _optional_str(body.get("model"))
        plan = await self.state.admit(
            request, model=model, prompt=_last_user_text(body.get("messages")), reject=error_response
        )
        if not isinstance(plan, Plan):
            return plan
        try:
            chat = _parse_chat(body, problem, plan)
        except BadRequest as exc:
            return exc.response()
        if not self.state.knows_model(chat.model):
            return model_not_found(chat.model)
        answer = content.answer(chat.ask)
        usage = _usage(chat.prompt_tokens, answer.completion_tokens, plan.quirks)
        if chat.stream:
            events, body_events = _stream_events(chat, answer, usage, plan.quirks)
            return await send_stream(request, events, body_events, plan)
        return await send_body(request, orjson.dumps(_completion(chat, answer, usage)), plan)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, problem = _load(await request.read())
        model = _optional_str(body.get("model"))
        plan = await self.state.admit(
            request, model=model, prompt=_first_text(body.get("input")), reject=error_response
        )
        if not isinstance(plan, Plan):
            return plan
        try:
            job = _parse_embeddings(body, problem)
        except BadRequest as exc:
            return exc.response()
        if not self.state.knows_model(job.model):
            return model_not_found(job.model)
        return await send_body(request, orjson.dumps(_embeddings(job)), plan)

    async def models(self, request: web.Request) -> web.StreamResponse:
        plan = await self.state.admit(request, model=None, prompt="", reject=error_response)
        if not isinstance(plan, Plan):
            return plan
        listing = {"object": "list", "data": [_model_object(m) for m in self.state.models]}
        return await send_body(request, orjson.dumps(listing), plan)

    async def model(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        plan = await self.state.admit(request, model=name, prompt="", reject=error_response)
        if not isinstance(plan, Plan):
            return plan
        if not self.state.knows_model(name):
            return model_not_found(name)
        return await send_body(request, orjson.dumps(_model_object(name)), plan)


# ---- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Chat:
    model: str
    stream: bool
    include_usage: bool
    prompt_tokens: int
    ask: Ask


@dataclass(frozen=True, slots=True)
class _EmbeddingJob:
    model: str
    inputs: tuple[str, ...]  # each input's seed text (token arrays spelled as "tokens:1,2,3")
    tokens: int
    dimensions: int
    base64: bool


def _load(raw: bytes) -> tuple[JSON, BadRequest | None]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}, BadRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    if not isinstance(value, dict):
        return {}, BadRequest("Invalid type for request body: expected an object.", code="invalid_type")
    return value, None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _text_of(message_content: object) -> str:
    if isinstance(message_content, str):
        return message_content
    if isinstance(message_content, list):
        return " ".join(
            part["text"]
            for part in message_content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(messages: object) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text_of(message.get("content"))
    return ""


def _first_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return ""


def _require_model(body: JSON) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter")
    return model


def _messages(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list):
        raise BadRequest("Invalid type for 'messages': expected an array.", "messages", "invalid_type")
    if not messages:
        raise BadRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"Invalid 'messages[{i}]': expected an object with a role.", f"messages[{i}]")
    return messages


def _optional_int(body: JSON, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"Invalid '{name}': expected an integer of at least 1.", name, "invalid_value")
    return value


def _tools(body: JSON) -> tuple[ToolSpec, ...]:
    tools = body.get("tools")
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise BadRequest("Invalid type for 'tools': expected an array.", "tools", "invalid_type")
    specs = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if function is None:
            continue
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(
                f"Missing required parameter: 'tools[{i}].function.name'.", f"tools[{i}].function.name"
            )
        parameters = function.get("parameters")
        specs.append(ToolSpec(function["name"], parameters if isinstance(parameters, dict) else {}))
    return tuple(specs)


def _forced_tool(choice: object, tools: Sequence[ToolSpec]) -> str | None:
    if not isinstance(choice, dict) or choice.get("type") != "function":
        return None
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or name not in {tool.name for tool in tools}:
        raise BadRequest(f"Invalid 'tool_choice': no function named {name!r} in 'tools'.", "tool_choice")
    return name


def _json_mode(body: JSON) -> tuple[bool, Mapping[str, object] | None]:
    """(json_object, json_schema) from ``response_format``."""
    fmt = body.get("response_format")
    if fmt is None:
        return False, None
    if not isinstance(fmt, dict) or fmt.get("type") not in _RESPONSE_FORMATS:
        raise BadRequest("Invalid 'response_format.type'.", "response_format.type", "invalid_value")
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return False, schema if isinstance(schema, dict) else {"type": "object"}
    return fmt["type"] == "json_object", None


def _parse_chat(body: JSON, problem: BadRequest | None, plan: Plan) -> _Chat:
    if problem is not None:
        raise problem
    model = _require_model(body)
    messages = _messages(body)
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    max_tokens = _optional_int(body, "max_completion_tokens") or _optional_int(body, "max_tokens")
    tools = _tools(body)
    choice = body.get("tool_choice")
    json_object, json_schema = _json_mode(body)
    ask = Ask(
        prompt=plan.prompt,
        words=plan.words,
        max_tokens=max_tokens,
        tools=tools,
        tool_name=_forced_tool(choice, tools),
        call_tools=bool(tools) and choice != "none" and messages[-1].get("role") != "tool",
        parallel_tools=plan.parallel_tools and body.get("parallel_tool_calls") is not False,
        json_object=json_object,
        json_schema=json_schema,
    )
    prompt_tokens = content.count_prompt_tokens(messages, body.get("tools") or ())
    return _Chat(model, stream, include_usage, prompt_tokens, ask)


def _parse_embeddings(body: JSON, problem: BadRequest | None) -> _EmbeddingJob:
    if problem is not None:
        raise problem
    model = _require_model(body)
    raw = body.get("input")
    if raw is None:
        raise BadRequest("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    inputs, tokens = _embedding_inputs(raw)
    dimensions = body.get("dimensions")
    if dimensions is None:
        dimensions = WIDE_EMBEDDING_MODELS.get(model, EMBEDDING_DIMENSIONS)
    elif not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 8192:
        raise BadRequest(
            "Invalid 'dimensions': expected an integer from 1 to 8192.", "dimensions", "invalid_value"
        )
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    return _EmbeddingJob(model, inputs, tokens, dimensions, encoding == "base64")


def _embedding_inputs(raw: object) -> tuple[tuple[str, ...], int]:
    """Each input's seed text, and the prompt tokens of them all."""
    invalid = BadRequest("'$.input' is invalid. Please check the API reference.", "input", "invalid_value")
    items: list[object] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    if items and all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        items = [items]  # one token array
    if not items:
        raise invalid
    seeds: list[str] = []
    tokens = 0
    for item in items:
        if isinstance(item, str) and item:
            seeds.append(item)
            tokens += content.count_tokens(item)
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            seeds.append("tokens:" + ",".join(map(str, item)))
            tokens += len(item)
        else:
            raise invalid
    return tuple(seeds), tokens


# ---- responses ------------------------------------------------------------------------------


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _model_object(model: str) -> JSON:
    return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": "system"}


def _usage(prompt_tokens: int, text_tokens: int, quirks: Quirks) -> JSON:
    completion_tokens = text_tokens + quirks.reasoning_tokens  # OpenAI counts reasoning as completion
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": min(quirks.cached_tokens, prompt_tokens),
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": quirks.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _completion(chat: _Chat, answer: Answer, usage: JSON) -> JSON:
    message: JSON = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": _call_id(), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    return {
        "id": _completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}],
        "usage": usage,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _text_deltas(answer: Answer) -> list[JSON]:
    first: JSON = {"role": "assistant", "content": "", "refusal": None}
    return [first, *({"content": piece} for piece in answer.pieces)]


def _tool_deltas(answer: Answer, omit_index: bool) -> list[JSON]:
    """Per call: a header delta (id, type, name, empty arguments), then argument fragments."""

    def delta(index: int, call: JSON) -> JSON:
        return {"tool_calls": [call if omit_index else {"index": index, **call}]}

    deltas: list[JSON] = []
    for index, call in enumerate(answer.tool_calls):
        head = delta(
            index, {"id": _call_id(), "type": "function", "function": {"name": call.name, "arguments": ""}}
        )
        if index == 0:
            head = {"role": "assistant", "content": None, "refusal": None, **head}
        deltas.append(head)
        size = -(-len(call.arguments) // ARGUMENT_FRAGMENTS)
        for fragment in content.split_fragments(call.arguments, size):
            deltas.append(delta(index, {"function": {"arguments": fragment}}))
    return deltas


def _stream_events(chat: _Chat, answer: Answer, usage: JSON, quirks: Quirks) -> tuple[list[bytes], int]:
    """Every SSE event of the stream, and how many of them come before the finishing chunk."""
    with_usage = chat.include_usage and not quirks.no_usage
    base: JSON = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": chat.model,
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if with_usage:
        base["usage"] = None  # as OpenAI: null on every chunk but the last

    def event(delta: JSON, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    deltas = _tool_deltas(answer, quirks.omit_tool_call_index) if answer.tool_calls else _text_deltas(answer)
    events = [event(delta) for delta in deltas]
    body_events = len(events)
    events.append(event({}, answer.finish))
    if with_usage:
        events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    events.append(_DONE)
    return events, body_events


def _embeddings(job: _EmbeddingJob) -> JSON:
    data = []
    for index, seed in enumerate(job.inputs):
        vector = content.embedding(seed, job.dimensions)
        encoded: object = content.embedding_base64(vector) if job.base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": job.tokens, "total_tokens": job.tokens}
    return {"object": "list", "data": data, "model": job.model, "usage": usage}

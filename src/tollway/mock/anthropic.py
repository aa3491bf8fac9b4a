"""Anthropic's Messages API for the mock: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Bodies follow the official SDK's types (``Message``, ``RawMessageStreamEvent``, ``ErrorResponse``);
the tests parse them with it. Where the real API allows variants, the mock picks the shape that
trips translators:

- tools offered with ``tool_choice`` auto: a text block THEN the tool_use block(s) (two with
  ``[[mock:parallel_tools]]``); ``any`` or ``tool`` force the call, so no text comes first;
- thinking (``enabled`` or ``adaptive``): a thinking block first; its signature is a digest of its
  text and is checked when the block comes back in a later request (altered: 400);
- usage: ``input_tokens`` EXCLUDES cache reads (quirk ``cached_tokens`` -> ``cache_read_input_tokens``),
  so input plus cache reads equals the OpenAI mock's ``prompt_tokens`` for the same messages;
  ``output_tokens`` includes thinking (and quirk ``reasoning_tokens``, also shown as
  ``output_tokens_details.thinking_tokens``);
- ``max_tokens`` is spent on thinking, text, then tool input; running out inside a tool_use cuts
  its streamed ``partial_json`` mid-object (non-streamed: ``input`` is ``{}``), stop_reason
  ``max_tokens``; a stop sequence found in the text ends it there (``stop_sequence``);
- the stream: ``message_start`` (output_tokens 1), ``ping``, per block ``content_block_start`` /
  ``content_block_delta`` / ``content_block_stop``, ``message_delta`` (usage: output_tokens only),
  ``message_stop``, every event with its ``event:`` line and no ``[DONE]``; ``[[mock:stream_error]]``
  ends it with an ``error`` event (overloaded_error) after the first block delta;
- requests are checked where translators slip, with the API's 400 ``invalid_request_error``: the
  ``anthropic-version`` header, ``max_tokens``, roles, block types, empty text, image sources,
  tool names, tool_use/tool_result pairing, temperature 0..1, the thinking budget and its rules.

The API key is read from ``x-api-key`` (or ``Authorization: Bearer``). Of the quirks, ``cached_tokens``
and ``reasoning_tokens`` apply; ``omit_tool_call_index`` and ``no_usage`` are habits of OpenAI-compatible
servers and do not (an Anthropic message always carries usage).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson
from aiohttp import web

from tollway.mock import content
from tollway.mock.content import Ask, ToolCall, ToolSpec
from tollway.mock.faults import Plan, Quirks, send_body, send_stream
from tollway.mock.state import MockState

THINKING_MIN_BUDGET = 1024
ARGUMENT_FRAGMENTS = 3  # a streamed tool_use's input arrives in about this many partial_json pieces
STREAM_ERROR_AFTER = 4  # [[mock:stream_error]]: message_start, ping, a block start and one delta first
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_BLOCK_TYPES = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use",
    "tool_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result", "tool_search_tool_result", "container_upload",
)  # fmt: skip
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_WORD = re.compile(r"\s*\S+|\s+$")

JSON = dict[str, Any]  # a decoded wire object, read only inside this module's parsers
StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class BadRequest(Exception):
    """A request the Messages API refuses with 400 ``invalid_request_error``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str) -> JSON:
    error = {"type": error_type(status), "message": message}
    return {"type": "error", "error": error, "request_id": _request_id()}


def error_response(status: int, message: str, code: str | None = None) -> web.Response:
    """Anthropic's envelope: {"type": "error", "error": {"type", "message"}, "request_id"}."""
    if code == "invalid_api_key":
        message = "invalid x-api-key"
    body = error_body(status, message)
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    response.headers["request-id"] = body["request_id"]
    return response


def api_key(request: web.Request) -> str | None:
    """The key of an Anthropic request: ``x-api-key``, else an ``Authorization: Bearer`` token."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return request.headers.get("x-api-key") or (token if scheme == "Bearer" and token else None)


def register(app: web.Application, state: MockState) -> None:
    api = AnthropicMock(state)
    app.router.add_post("/v1/messages", api.messages)
    app.router.add_post("/v1/messages/count_tokens", api.count_tokens)


class AnthropicMock:
    def __init__(self, state: MockState) -> None:
        self.state = state

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, problem = _load(await request.read())
        plan = await self._admit(request, body)
        if not isinstance(plan, Plan):
            return plan
        try:
            job = _parse_job(request, body, problem, plan)
        except BadRequest as exc:
            return error_response(400, exc.message)
        if not self.state.knows_model(job.model):
            return error_response(404, f"model: {job.model}")
        reply = _reply(job, plan.quirks)
        usage = _usage(job.prompt_tokens, reply, plan.quirks)
        if job.stream:
            events, body_events = _stream_events(job, reply, usage, plan)
            return await send_stream(request, events, body_events, plan)
        return await send_body(request, orjson.dumps(_message(job, reply, usage)), plan)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, problem = _load(await request.read())
        plan = await self._admit(request, body)
        if not isinstance(plan, Plan):
            return plan
        try:
            prompt = _parse_prompt(request, body, problem)
        except BadRequest as exc:
            return error_response(400, exc.message)
        if not self.state.knows_model(prompt.model):
            return error_response(404, f"model: {prompt.model}")
        return await send_body(request, orjson.dumps({"input_tokens": prompt.tokens}), plan)

    async def _admit(self, request: web.Request, body: JSON) -> Plan | web.StreamResponse:
        model = body.get("model")
        return await self.state.admit(
            request,
            model=model if isinstance(model, str) else None,
            prompt=_last_user_text(body.get("messages")),
            reject=error_response,
            key=api_key,
        )


# ---- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Prompt:
    """What both endpoints read: the model and everything that counts as input."""

    model: str
    messages: list[JSON]
    tools: tuple[ToolSpec, ...]
    choice: Literal["auto", "any", "tool", "none"]
    forced_tool: str | None
    parallel: bool  # not disable_parallel_tool_use
    thinking: JSON | None  # the enabled/adaptive thinking config; None when off
    tokens: int


@dataclass(frozen=True, slots=True)
class _Job:
    model: str
    stream: bool
    max_tokens: int
    prompt_tokens: int
    ask: Ask
    preamble: bool  # text before the tool_use blocks (tool_choice auto)
    thinking: bool
    thinking_omitted: bool  # display "omitted": the thinking text is withheld, its signature given
    stop_sequences: tuple[str, ...]


def _load(raw: bytes) -> tuple[JSON, BadRequest | None]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return {}, BadRequest(f"There was an issue with your request body: invalid JSON ({exc})")
    if not isinstance(value, dict):
        return {}, BadRequest("There was an issue with your request body: expected a JSON object")
    return value, None


def _text_of(blocks: object) -> str:
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        return ""
    texts = (b.get("text") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    return " ".join(text for text in texts if isinstance(text, str))


def _last_user_text(messages: object) -> str:
    """The text of the last user message that has any: a turn of bare tool_result blocks is skipped,
    as the OpenAI mock skips ``tool`` messages, so both answer the question that was asked."""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                text = _text_of(message.get("content"))
                if text:
                    return text
    return ""


def _parse_prompt(request: web.Request, body: JSON, problem: BadRequest | None) -> _Prompt:
    if problem is not None:
        raise problem
    if not request.headers.get("anthropic-version"):
        raise BadRequest("anthropic-version: header is required")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    messages = _messages(body.get("messages"))
    system = _system(body.get("system"))
    tools, tool_params = _tools(body.get("tools"))
    choice, forced, parallel = _tool_choice(body.get("tool_choice"), tools)
    thinking = _thinking(body.get("thinking"))
    if thinking is not None:
        _check_thinking_turn(messages)
    view: list[object] = [{"role": "system", "content": system}] if system else []
    tokens = content.count_prompt_tokens([*view, *messages], tool_params)
    return _Prompt(model, messages, tools, choice, forced, parallel, thinking, tokens)


def _parse_job(request: web.Request, body: JSON, problem: BadRequest | None, plan: Plan) -> _Job:
    prompt = _parse_prompt(request, body, problem)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise BadRequest("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise BadRequest("max_tokens: Input should be greater than or equal to 1")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: Input should be a valid boolean")
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or isinstance(temperature, bool) or not 0 <= temperature <= 1
    ):
        raise BadRequest("temperature: Input should be a number between 0 and 1")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise BadRequest("stop_sequences: Input should be a valid list of strings")
    thinking = prompt.thinking
    if thinking is not None:
        budget = thinking.get("budget_tokens")
        if isinstance(budget, int) and budget >= max_tokens:
            raise BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
        if prompt.choice in ("any", "tool"):
            raise BadRequest("Thinking may not be enabled when tool_choice forces tool use.")
        if temperature is not None and temperature != 1:
            raise BadRequest("`temperature` may only be set to 1 when thinking is enabled.")
    last_is_results = _is_tool_results(prompt.messages[-1])
    ask = Ask(
        prompt=plan.prompt,
        words=plan.words,
        tools=prompt.tools,
        tool_name=prompt.forced_tool,
        call_tools=bool(prompt.tools)
        and (prompt.choice in ("any", "tool") or (prompt.choice == "auto" and not last_is_results)),
        parallel_tools=plan.parallel_tools and prompt.parallel,
        json_schema=_output_schema(body.get("output_config")),
    )
    return _Job(
        model=prompt.model,
        stream=stream,
        max_tokens=max_tokens,
        prompt_tokens=prompt.tokens,
        ask=ask,
        preamble=prompt.choice == "auto",
        thinking=thinking is not None,
        thinking_omitted=thinking is not None and thinking.get("display") == "omitted",
        stop_sequences=tuple(stops),
    )


def _messages(messages: object) -> list[JSON]:
    """The messages, checked the way the API checks them, tool_use/tool_result pairing included."""
    if messages is None:
        raise BadRequest("messages: Field required")
    if not isinstance(messages, list):
        raise BadRequest("messages: Input should be a valid list")
    if not messages:
        raise BadRequest("messages: at least one message is required")
    pending: list[str] = []  # tool_use ids of the previous assistant message
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        last = i == len(messages) - 1
        blocks = _blocks(message.get("content"), f"messages.{i}.content", role, last)
        if role == "assistant":
            if pending:
                raise _unanswered(i, pending)
            pending = [b["id"] for b in blocks if b["type"] == "tool_use"]
            continue
        answered = set()
        for j, block in enumerate(blocks):
            if block["type"] == "tool_result":
                if block["tool_use_id"] not in pending:
                    raise BadRequest(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
                answered.add(block["tool_use_id"])
        if missing := [tool_id for tool_id in pending if tool_id not in answered]:
            raise _unanswered(i, missing)
        pending = []
    return messages


def _unanswered(index: int, ids: Sequence[str]) -> BadRequest:
    return BadRequest(
        f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )


def _blocks(value: object, where: str, role: str, last: bool) -> list[JSON]:
    if isinstance(value, str):
        if not value and not (last and role == "assistant"):
            raise BadRequest(f"{where}: {role} messages must have non-empty content")
        return [{"type": "text", "text": value}] if value else []
    if not isinstance(value, list):
        raise BadRequest(f"{where}: Input should be a valid string or list")
    if not value and not (last and role == "assistant"):
        raise BadRequest(f"{where}: List should have at least 1 item after validation, not 0")
    for j, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict) or kind not in _BLOCK_TYPES:
            raise BadRequest(
                f"{where}.{j}: Input tag {kind!r} found using 'type' does not match any of the expected "
                f"tags: {', '.join(repr(t) for t in _BLOCK_TYPES)}"
            )
        _check_block(block, f"{where}.{j}", role)
    return value


def _check_block(block: JSON, where: str, role: str) -> None:
    kind = block["type"]
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise BadRequest("messages: text content blocks must be non-empty")
    if kind == "image":
        _check_image(block.get("source"), f"{where}.image.source")
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        raise BadRequest(f"{where}.tool_use: `id`, `name` and an object `input` are required")
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        raise BadRequest(f"{where}.tool_result.tool_use_id: Field required")
    if kind in ("thinking", "redacted_thinking") and role != "assistant":
        raise BadRequest(f"{where}: `{kind}` blocks may only appear in assistant messages")
    if kind == "thinking":
        thinking, signature = block.get("thinking"), block.get("signature")
        if not isinstance(thinking, str) or not isinstance(signature, str):
            raise BadRequest(f"{where}.thinking: `thinking` and `signature` are required")
        if signature != thinking_signature(thinking):
            raise BadRequest(f"{where}: Invalid `signature` in `thinking` block")


def _check_image(source: object, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if not isinstance(source, dict) or kind not in ("base64", "url", "file"):
        raise BadRequest(
            f"{where}: Input tag {kind!r} found using 'type' does not match 'base64', 'url', 'file'"
        )
    if kind == "base64":
        if source.get("media_type") not in _IMAGE_TYPES:
            raise BadRequest(
                f"{where}.base64.media_type: Input should be {', '.join(map(repr, _IMAGE_TYPES))}"
            )
        if not isinstance(source.get("data"), str):
            raise BadRequest(f"{where}.base64.data: Field required")
    elif kind == "url" and not isinstance(source.get("url"), str):
        raise BadRequest(f"{where}.url.url: Field required")


def _is_tool_results(message: JSON) -> bool:
    blocks = message.get("content")
    return (
        message.get("role") == "user"
        and isinstance(blocks, list)
        and any(b.get("type") == "tool_result" for b in blocks)
        and not _text_of(blocks)
    )


def _system(system: object) -> str | list[JSON] | None:
    if system is None or isinstance(system, str):
        return system or None
    if isinstance(system, list) and all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str) for b in system
    ):
        return system or None
    raise BadRequest("system: Input should be a valid string or a list of text blocks")


def _tools(tools: object) -> tuple[tuple[ToolSpec, ...], list[object]]:
    """The client tools, and every tool as the OpenAI mock would count it (so counts agree)."""
    if tools is None:
        return (), []
    if not isinstance(tools, list):
        raise BadRequest("tools: Input should be a valid list")
    specs: list[ToolSpec] = []
    counted: list[object] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{i}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):  # a server tool (web_search...): never called here
            counted.append(tool)
            continue
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise BadRequest(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if not isinstance(schema, dict):
            raise BadRequest(f"tools.{i}.custom.input_schema: Field required")
        specs.append(ToolSpec(name, schema))
        function = {"name": name, "description": tool.get("description", ""), "parameters": schema}
        counted.append({"type": "function", "function": function})
    return tuple(specs), counted


def _tool_choice(
    choice: object, tools: Sequence[ToolSpec]
) -> tuple[Literal["auto", "any", "tool", "none"], str | None, bool]:
    """(kind, the forced tool's name, whether parallel calls are allowed)."""
    if choice is None:
        return "auto", None, True
    kind = choice.get("type") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or kind not in ("auto", "any", "tool", "none"):
        raise BadRequest(f"tool_choice: Input tag {kind!r} does not match 'auto', 'any', 'tool', 'none'")
    parallel = choice.get("disable_parallel_tool_use") is not True
    if kind in ("any", "tool") and not tools:
        raise BadRequest("tool_choice: may only be specified while providing tools")
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or name not in {tool.name for tool in tools}:
            raise BadRequest(f"tool_choice.tool.name: tool {name!r} not found in 'tools'")
        return "tool", name, parallel
    return kind, None, parallel


def _thinking(value: object) -> JSON | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if not isinstance(value, dict) or kind not in ("enabled", "disabled", "adaptive", "between_tools"):
        raise BadRequest(f"thinking: Input tag {kind!r} does not match 'enabled', 'disabled', 'adaptive'")
    if kind == "disabled":
        return None
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise BadRequest("thinking.enabled.budget_tokens: Field required")
        if budget < THINKING_MIN_BUDGET:
            raise BadRequest(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{THINKING_MIN_BUDGET}"
            )
    return value


def _check_thinking_turn(messages: list[JSON]) -> None:
    """With thinking on, the assistant message whose tool_use the last turn answers must open with
    its thinking block: a translator that drops thinking from the history fails here, as upstream."""
    if len(messages) < 2 or not _is_tool_results(messages[-1]):
        return
    blocks = messages[-2].get("content")
    first = blocks[0].get("type") if isinstance(blocks, list) and blocks else "text"
    if first not in ("thinking", "redacted_thinking"):
        raise BadRequest(
            f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
            f"found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
            "thinking block (preceding the latest set of `tool_use` and `tool_result` blocks)."
        )


def _output_schema(config: object) -> JSON | None:
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {"type": "object"}
    return None


# ---- the answer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Block:
    kind: Literal["thinking", "text", "tool_use"]
    pieces: tuple[str, ...]  # thinking or text as the stream sends it; tool_use: its input JSON
    name: str = ""
    tool_id: str = ""
    signature: str = ""
    complete: bool = True  # tool_use: False when max_tokens cut its input short

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class _Reply:
    blocks: tuple[_Block, ...]
    stop_reason: StopReason
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int


def thinking_signature(thinking: str) -> str:
    """The signature the mock gives a thinking block: a digest of its text, so any edit shows."""
    digest = hashlib.blake2b(b"tollway-mock/thinking\0" + thinking.encode(), digest_size=48).digest()
    return base64.b64encode(digest).decode()


def _reply(job: _Job, quirks: Quirks) -> _Reply:
    """The content blocks within ``max_tokens``: thinking, then text or text and tool_use blocks."""
    blocks: list[_Block] = []
    budget = job.max_tokens
    spent_thinking = 0

    def done(stop: StopReason, sequence: str | None = None) -> _Reply:
        spent = spent_thinking + sum(_block_tokens(b) for b in blocks if b.kind != "thinking")
        reasoning = spent_thinking + quirks.reasoning_tokens
        return _Reply(tuple(blocks), stop, sequence, spent + quirks.reasoning_tokens, reasoning)

    if job.thinking:
        full = _thinking_text(job.ask.prompt)
        kept = _fit(full, budget)
        spent_thinking = content.count_tokens(kept)
        budget -= spent_thinking
        shown = "" if job.thinking_omitted else kept
        blocks.append(_Block("thinking", _words(shown), signature=thinking_signature(shown)))
        if kept != full:
            return done("max_tokens")
    answer = content.answer(replace(job.ask, max_tokens=budget))
    if answer.tool_calls:
        if job.preamble:
            full = _preamble(answer.tool_calls)
            kept = _fit(full, budget)
            if kept:
                blocks.append(_Block("text", _words(kept)))
                budget -= content.count_tokens(kept)
            if kept != full:
                return done("max_tokens")
        for call in answer.tool_calls:
            tool = _Block("tool_use", (call.arguments,), call.name, _tool_id())
            cost = _block_tokens(tool)
            if cost > budget:
                room = max(budget - content.count_tokens(call.name), 0) * 4
                blocks.append(replace(tool, pieces=(call.arguments[: max(room, 1)],), complete=False))
                return done("max_tokens")
            blocks.append(tool)
            budget -= cost
        return done("tool_use")
    text, sequence = _stop_at(answer.text or "", job.stop_sequences)
    if text:
        blocks.append(_Block("text", answer.pieces if text == answer.text else _words(text)))
    if sequence is not None:
        return done("stop_sequence", sequence)
    return done("max_tokens" if answer.finish == "length" else "end_turn")


def _block_tokens(block: _Block) -> int:
    if block.kind == "tool_use":
        return content.count_tokens(block.name) + content.count_tokens(block.text)
    return content.count_tokens(block.text)


def _thinking_text(prompt: str) -> str:
    topic = " ".join(prompt.split()[:8]) or "an empty message"
    return f"Mock thinking about: {topic}. A short, plain answer will do."


def _preamble(calls: Sequence[ToolCall]) -> str:
    names = list(dict.fromkeys(call.name for call in calls))
    return f"I'll use the {' and '.join(names)} tool{'s' if len(names) > 1 else ''}."


def _words(text: str) -> tuple[str, ...]:
    """``text`` in stream pieces: one word each, with the space before it."""
    return tuple(_WORD.findall(text)) or ((text,) if text else ())


def _fit(text: str, tokens: int) -> str:
    """The longest run of ``text``'s leading words within ``tokens``."""
    if content.count_tokens(text) <= tokens:
        return text
    kept = ""
    for piece in _words(text):
        if content.count_tokens(kept + piece) > tokens:
            break
        kept += piece
    return kept


def _stop_at(text: str, sequences: Sequence[str]) -> tuple[str, str | None]:
    """``text`` up to the earliest stop sequence in it, and that sequence (None: none found)."""
    found = [(text.find(s), s) for s in sequences if s and s in text]
    if not found:
        return text, None
    at, sequence = min(found)
    return text[:at], sequence


def _usage(prompt_tokens: int, reply: _Reply, quirks: Quirks) -> JSON:
    cache_read = min(quirks.cached_tokens, prompt_tokens)
    usage: JSON = {
        "input_tokens": prompt_tokens - cache_read,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": reply.output_tokens,
        "service_tier": "standard",
    }
    if reply.thinking_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": reply.thinking_tokens}
    return usage


# ---- responses ------------------------------------------------------------------------------


def _message_id() -> str:
    return f"msg_01{uuid.uuid4().hex[:22]}"


def _tool_id() -> str:
    return f"toolu_01{uuid.uuid4().hex[:22]}"


def _request_id() -> str:
    return f"req_01{uuid.uuid4().hex[:22]}"


def _block_json(block: _Block) -> JSON:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.kind == "text":
        return {"type": "text", "text": block.text}
    tool_input = orjson.loads(block.text) if block.complete else {}
    return {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": tool_input}


def _message(job: _Job, reply: _Reply, usage: JSON) -> JSON:
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": job.model,
        "content": [_block_json(block) for block in reply.blocks],
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage,
    }


def _event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _block_events(index: int, block: _Block) -> list[bytes]:
    """content_block_start, its deltas, content_block_stop."""

    def delta(value: JSON) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": value})

    if block.kind == "thinking":
        start: JSON = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [delta({"type": "thinking_delta", "thinking": piece}) for piece in block.pieces]
        deltas.append(delta({"type": "signature_delta", "signature": block.signature}))
    elif block.kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [delta({"type": "text_delta", "text": piece}) for piece in block.pieces]
    else:
        start = {"type": "tool_use", "id": block.tool_id, "name": block.name, "input": {}}
        size = -(-len(block.text) // ARGUMENT_FRAGMENTS)
        fragments = ("", *content.split_fragments(block.text, size))  # the API opens with an empty one
        deltas = [delta({"type": "input_json_delta", "partial_json": f}) for f in fragments]
    opened = {"type": "content_block_start", "index": index, "content_block": start}
    closed = {"type": "content_block_stop", "index": index}
    return [_event("content_block_start", opened), *deltas, _event("content_block_stop", closed)]


def _stream_events(job: _Job, reply: _Reply, usage: JSON, plan: Plan) -> tuple[list[bytes], int]:
    """Every SSE event of the stream, and how many come before ``message_delta``."""
    opening = {key: value for key, value in usage.items() if key != "output_tokens_details"}
    message = {
        **_message(job, reply, {**opening, "output_tokens": 1}),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    events = [
        _event("message_start", {"type": "message_start", "message": message}),
        _event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(reply.blocks):
        events.extend(_block_events(index, block))
    body_events = len(events)
    if plan.stream_error:
        events = events[: min(STREAM_ERROR_AFTER, body_events)]
        events.append(_event("error", error_body(529, "Overloaded")))
        return events, len(events)
    final: JSON = {"output_tokens": reply.output_tokens}
    if "output_tokens_details" in usage:
        final["output_tokens_details"] = usage["output_tokens_details"]
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence}
    events.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": final}))
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events, body_events

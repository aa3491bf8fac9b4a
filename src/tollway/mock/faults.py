"""The mock providers' fault model: what may go wrong with a request, and how a test asks for it.

Three sources decide one request's behaviour, later ones winning field by field:

1. start options (``MockOptions``): quirks, chunk delay, reply length, an initial fault;
2. the control endpoint ``POST /__mock/faults`` (or ``RunningMock.set_fault``): the active fault,
   optionally for the next ``times`` requests only, plus quirk overrides;
3. directives in the request's last user message, for this request only::

       [[mock:status=503]]  [[mock:drop]]  [[mock:status=429,retry_after=2,error_style=detail]]

Fault fields: status, latency_ms, drop, cut_after, chunk_delay_ms, retry_after, error_style, times
(control only). Quirk fields: omit_tool_call_index, no_usage, cached_tokens, reasoning_tokens.
Reply fields (directives only): words, parallel_tools, stream_error (Anthropic and Gemini streams: an
error event after the first few events). A bare name (``[[mock:drop]]``) means true.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

import orjson
from aiohttp import web

ErrorStyle = Literal["openai", "string", "detail", "text"]
ERROR_STYLES: frozenset[str] = frozenset(get_args(ErrorStyle))

ErrorRenderer = Callable[[int, str, "str | None"], web.Response]
"""A wire format's own error envelope: (status, message, code) -> response."""


@dataclass(frozen=True, slots=True)
class Fault:
    status: int | None = None  # answer with this status and an error body
    latency_ms: float = 0  # sleep before answering (before the first byte of a stream)
    drop: bool = False  # close the connection without any response
    cut_after: int | None = None  # stream: N events then hang up; otherwise: half the body then hang up
    chunk_delay_ms: float | None = None  # pause between stream events (None: the start option)
    retry_after: float | None = None  # Retry-After header on an error status
    error_style: ErrorStyle = "openai"  # openai: the format's envelope; string, detail, text: vendor oddities
    times: int | None = None  # apply to the next N requests, then clear; None: until cleared


@dataclass(frozen=True, slots=True)
class Quirks:
    """Vendor habits of OpenAI-compatible servers that tollway must tolerate."""

    omit_tool_call_index: bool = False
    no_usage: bool = False
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    """Field values given by one control request or one message's directives.

    Values are already coerced to their field's type by the tables below, hence ``Any``.
    """

    fault: Mapping[str, Any]
    quirks: Mapping[str, Any]
    reply: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything that shapes the answer to one request."""

    fault: Fault
    quirks: Quirks
    prompt: str  # the prompt with directives removed
    words: int
    parallel_tools: bool
    chunk_delay_ms: float
    stream_error: bool = False  # fail the stream mid-way with the format's error event


class FaultSlot:
    """The active fault; ``take`` hands it to one request and counts down ``times``."""

    def __init__(self, fault: Fault | None = None) -> None:
        self._fault: Fault | None = None
        self._left: int | None = None
        self.set(fault)

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @property
    def left(self) -> int | None:
        """Requests the fault still applies to (None: until cleared)."""
        return self._left

    def set(self, fault: Fault | None) -> None:
        self._fault = fault
        self._left = fault.times if fault is not None else None

    def take(self) -> Fault | None:
        fault = self._fault
        if fault is not None and self._left is not None:
            self._left -= 1
            if self._left <= 0:
                self.set(None)
        return fault


_DIRECTIVE = re.compile(r"\[\[mock:([^\]]*)\]\]")
_MARKER = "[[mock:"
_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ValueError("expected a boolean")


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError("expected a non-negative integer")


def _to_optional_int(value: object) -> int | None:
    return None if value is None or value == "null" else _to_int(value)


def _to_status(value: object) -> int | None:
    status = _to_optional_int(value)
    if status is not None and not 100 <= status <= 599:
        raise ValueError("expected an HTTP status")
    return status


def _to_times(value: object) -> int | None:
    times = _to_optional_int(value)
    if times == 0:
        raise ValueError("expected at least 1 (or null: until cleared)")
    return times


def _to_float(value: object) -> float:
    number = _to_optional_float(value)
    if number is None:
        raise ValueError("expected a non-negative number")
    return number


def _to_optional_float(value: object) -> float | None:
    if value is None or value == "null":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        try:
            return _to_optional_float(float(value))
        except ValueError:
            pass
    raise ValueError("expected a non-negative number")


def _to_style(value: object) -> ErrorStyle:
    for style in get_args(ErrorStyle):
        if value == style:
            return style  # type: ignore[no-any-return]
    raise ValueError(f"expected one of {sorted(ERROR_STYLES)}")


_Coerce = Callable[[object], object]
_FAULT_FIELDS: dict[str, _Coerce] = {
    "status": _to_status,
    "latency_ms": _to_float,
    "drop": _to_bool,
    "cut_after": _to_optional_int,
    "chunk_delay_ms": _to_optional_float,
    "retry_after": _to_optional_float,
    "error_style": _to_style,
    "times": _to_times,
}
_QUIRK_FIELDS: dict[str, _Coerce] = {
    "omit_tool_call_index": _to_bool,
    "no_usage": _to_bool,
    "cached_tokens": _to_int,
    "reasoning_tokens": _to_int,
}
_REPLY_FIELDS: dict[str, _Coerce] = {"words": _to_int, "parallel_tools": _to_bool, "stream_error": _to_bool}


def parse_settings(values: Mapping[str, object], *, directive: bool = False) -> Settings:
    """Type-check control fields (``directive=False``) or directive fields; ValueError names the culprit."""
    groups: tuple[dict[str, object], dict[str, object], dict[str, object]] = ({}, {}, {})
    tables = (_FAULT_FIELDS, _QUIRK_FIELDS, _REPLY_FIELDS if directive else {})
    for name, raw in values.items():
        if directive and name == "times":
            raise ValueError("mock directive 'times' is only valid in POST /__mock/faults")
        for group, table in zip(groups, tables, strict=True):
            if name in table:
                try:
                    group[name] = table[name](raw)
                except ValueError as exc:
                    raise ValueError(f"mock setting {name!r}: {exc}, got {raw!r}") from None
                break
        else:
            raise ValueError(f"unknown mock setting {name!r}")
    return Settings(*groups)


def make_fault(settings: Settings) -> Fault:
    return replace(Fault(), **settings.fault)


def parse_directives(text: str) -> tuple[Settings | None, str]:
    """The directives in ``text`` (None when there are none) and ``text`` without them."""
    if _MARKER not in text:
        return None, text
    values: dict[str, object] = {}
    for body in _DIRECTIVE.findall(text):
        for item in body.split(","):
            name, has_value, value = item.partition("=")
            if name.strip():
                values[name.strip()] = value.strip() if has_value else True
    return parse_settings(values, directive=True), _DIRECTIVE.sub("", text).strip()


def make_plan(
    active: Fault | None,
    quirks: Quirks,
    directives: Settings | None,
    prompt: str,
    *,
    words: int,
    chunk_delay_ms: float,
) -> Plan:
    """Combine the active fault and quirks with one request's directives."""
    fault = active or Fault()
    parallel = stream_error = False
    if directives is not None:
        fault = replace(fault, **directives.fault)
        quirks = replace(quirks, **directives.quirks)
        asked = directives.reply.get("words")
        words = asked if isinstance(asked, int) else words
        parallel = directives.reply.get("parallel_tools") is True
        stream_error = directives.reply.get("stream_error") is True
    delay = fault.chunk_delay_ms if fault.chunk_delay_ms is not None else chunk_delay_ms
    return Plan(fault, quirks, prompt, words, parallel, delay, stream_error)


async def inject(request: web.Request, fault: Fault, reject: ErrorRenderer) -> web.StreamResponse | None:
    """Apply the faults that strike before an answer; the response to return instead, if any."""
    if fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000)
    if fault.drop:
        hang_up(request)
        return web.Response()  # never written: the transport is closing
    if fault.status is not None:
        return error_response(fault, fault.status, reject)
    return None


def error_response(fault: Fault, status: int, reject: ErrorRenderer) -> web.Response:
    message = f"Mock fault: injected HTTP {status}"
    if fault.error_style in ("string", "detail"):
        key = "error" if fault.error_style == "string" else "detail"
        response = web.Response(
            status=status, body=orjson.dumps({key: message}), content_type="application/json"
        )
    elif fault.error_style == "text":
        response = web.Response(status=status, text=message, content_type="text/plain")
    else:
        response = reject(status, message, None)
    if fault.retry_after is not None:
        seconds = fault.retry_after
        response.headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
    return response


SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


async def send_body(
    request: web.Request, payload: bytes, plan: Plan, content_type: str = "application/json"
) -> web.StreamResponse:
    """A whole body; under ``cut_after`` only its first half, then the connection drops."""
    if plan.fault.cut_after is None:
        return web.Response(body=payload, content_type=content_type)
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = len(payload)
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write(payload[: len(payload) // 2])
    hang_up(request)
    return response


async def send_stream(
    request: web.Request, events: Sequence[bytes], body_events: int, plan: Plan
) -> web.StreamResponse:
    """Write a stream's SSE events, paced by ``chunk_delay_ms``.

    ``body_events`` counts the events before the finishing ones (finish reason, usage, [DONE]):
    under ``cut_after=N`` at most N of those are sent before the connection drops.
    """
    cut = plan.fault.cut_after
    if cut is not None:
        events = events[: min(cut, body_events)]
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        if plan.chunk_delay_ms:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(plan.chunk_delay_ms / 1000)
                await response.write(event)
        elif events:
            await response.write(b"".join(events))  # no pacing asked: one write is much cheaper
        if cut is None:
            await response.write_eof()
            return response
    except ConnectionError:
        return response  # the client went away
    hang_up(request)
    return response


def hang_up(request: web.Request) -> None:
    """Close the connection after what is already written, with no further HTTP framing."""
    transport = request.transport
    if transport is not None:
        transport.close()


def describe(slot: FaultSlot, quirks: Quirks) -> dict[str, object]:
    """The active settings as the control endpoints report them."""
    fault = slot.fault
    return {
        "fault": asdict(fault) if fault is not None else None,
        "times_left": slot.left,
        "quirks": asdict(quirks),
    }

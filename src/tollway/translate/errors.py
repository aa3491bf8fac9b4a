"""Errors across protocols: each upstream's error envelope read into an ``UpstreamError``, and the
error a stream must carry when it fails after bytes reached the client.

Envelopes read here::

    OpenAI     {"error": {"message", "type", "param", "code"}}
    Anthropic  {"type": "error", "error": {"type", "message"}}     (also a mid-stream ``error`` event;
                                                                  529 ``overloaded_error``)
    Gemini     {"error": {"code", "message", "status", "details"}} (also as a one-element list, and as a
                                                                  mid-stream ``data:`` chunk)

The ``UpstreamError`` keeps the upstream status (so its retryability and its type in each client
envelope follow from it) and the upstream's own error name as ``code``, except that a context
overflow is named ``context_length_exceeded`` in every protocol, the way OpenAI clients test for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from tollway.errors import StreamInterrupted, TollwayError, UpstreamError

Provider = Literal["openai", "anthropic", "gemini"]


def stream_ended_early(provider: Provider) -> StreamInterrupted:
    return StreamInterrupted(f"the {provider} stream ended before the response was complete")


_ANTHROPIC_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "NOT_IMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_CONTEXT_OVERFLOW = re.compile(
    r"prompt is too long|context length|context window|input token count .* exceeds|"
    r"exceeds the maximum number of tokens",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class UpstreamFault:
    """What an error envelope says: the status to act on, the message, the upstream's error name."""

    status: int
    message: str
    type: str
    code: str | None = None
    retry_after: float | None = None


def _load(body: bytes | dict[str, Any] | list[Any]) -> Any:
    if isinstance(body, (dict, list)):
        return body
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _text(body: bytes | dict[str, Any] | list[Any], status: int) -> str:
    if isinstance(body, bytes) and body.strip():
        return body[:500].decode("utf-8", "replace").strip()
    return f"upstream answered {status}"


def parse_openai_error(status: int, body: bytes | dict[str, Any]) -> UpstreamFault:
    data = _load(body)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):  # some OpenAI-compatible servers: {"error": "message"}
        return UpstreamFault(status, error, "api_error" if status >= 500 else "invalid_request_error")
    if not isinstance(error, dict):
        message = data.get("message") if isinstance(data, dict) else None
        return UpstreamFault(status, str(message or _text(body, status)), "api_error")
    code = error.get("code")
    return UpstreamFault(
        status,
        str(error.get("message") or _text(body, status)),
        str(error.get("type") or "api_error"),
        str(code) if code is not None else None,
    )


def parse_anthropic_error(status: int, body: bytes | dict[str, Any]) -> UpstreamFault:
    data = _load(body)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return UpstreamFault(status, _text(body, status), "api_error")
    kind = str(error.get("type") or "api_error")
    return UpstreamFault(status, str(error.get("message") or kind), kind, kind)


def parse_gemini_error(status: int, body: bytes | dict[str, Any] | list[Any]) -> UpstreamFault:
    data = _load(body)
    if isinstance(data, list) and data:  # the REST API wraps errors of streamed calls in a list
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return UpstreamFault(status, _text(body if not isinstance(body, list) else b"", status), "UNKNOWN")
    name = str(error.get("status") or "UNKNOWN")
    return UpstreamFault(
        status,
        str(error.get("message") or name),
        name,
        name,
        _gemini_retry_delay(error.get("details")),
    )


def _gemini_retry_delay(details: Any) -> float | None:
    """``google.rpc.RetryInfo`` carries ``retryDelay`` as a duration string such as ``"37s"``."""
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", ""))
            try:
                return float(delay.removesuffix("s"))
            except ValueError:
                return None
    return None


_PARSERS = {"openai": parse_openai_error, "anthropic": parse_anthropic_error, "gemini": parse_gemini_error}


def upstream_error(
    provider: Provider, status: int, body: bytes, *, retry_after: float | None = None
) -> UpstreamError:
    """The error for an upstream's non-2xx answer, from its envelope. ``retry_after`` (from the
    ``retry-after`` header) wins over a delay found in the body."""
    fault = _PARSERS[provider](status, body)
    return _to_error(provider, fault, body, retry_after)


def _to_error(provider: str, fault: UpstreamFault, body: bytes, retry_after: float | None) -> UpstreamError:
    code = fault.code
    if fault.status in (400, 413) and _CONTEXT_OVERFLOW.search(fault.message):
        code = "context_length_exceeded"
    return UpstreamError(
        fault.message,
        status=fault.status,
        provider=provider,
        body=body,
        code=code,
        retry_after=retry_after if retry_after is not None else fault.retry_after,
    )


def anthropic_event_error(data: dict[str, Any]) -> UpstreamError:
    """An ``event: error`` in an Anthropic stream (the HTTP status was already 200)."""
    fault = parse_anthropic_error(500, data)
    fault = UpstreamFault(_ANTHROPIC_STATUS.get(fault.type, 500), fault.message, fault.type, fault.code)
    return _to_error("anthropic", fault, orjson.dumps(data), None)


def gemini_chunk_error(data: dict[str, Any]) -> UpstreamError:
    """A ``data: {"error": ...}`` chunk in a Gemini stream."""
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    name = error.get("status") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and code >= 400 else _GOOGLE_STATUS.get(str(name), 500)
    return _to_error("gemini", parse_gemini_error(status, data), orjson.dumps(data), None)


def openai_chunk_error(data: dict[str, Any]) -> UpstreamError:
    """A ``data: {"error": ...}`` chunk in an OpenAI(-compatible) stream."""
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    status = code if isinstance(code, int) and code >= 400 else 500
    return _to_error("openai", parse_openai_error(status, data), orjson.dumps(data), None)


def openai_stream_error(error: TollwayError) -> dict[str, Any]:
    """The payload of the last ``data:`` line an OpenAI client gets when its stream fails midway;
    the OpenAI SDKs raise ``APIError`` on a chunk that carries ``error``."""
    return error.openai_envelope()


def anthropic_stream_error(error: TollwayError) -> tuple[str, dict[str, Any]]:
    """The ``event: error`` an Anthropic client gets when its stream fails midway."""
    return "error", error.anthropic_envelope()

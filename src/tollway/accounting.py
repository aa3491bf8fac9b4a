"""Stage 7: usage → cost. Stage 8: one log row, enqueued for the batch writer (never awaited)."""

from __future__ import annotations

import time

import orjson

from .call import Call, Endpoint, Usage
from .runtime import Runtime
from .store.row import LogRow


def account(rt: Runtime, call: Call, usage: Usage | None) -> None:
    call.usage = usage
    if usage is None or not call.provider:
        return
    provider = rt.router.provider(call.provider)
    call.cost = rt.pricer.cost(provider.kind, provider.name, call.upstream_model, call.model, usage)


def record(rt: Runtime, call: Call, response_body: bytes | None = None) -> None:
    writer = rt.writer
    if writer is None:
        return
    u = call.usage or _NO_USAGE
    # milliseconds to the microsecond: round(x * 1000) / 1000 is round(x, 3) without its decimal
    # conversion (the two differ at most by one microsecond in a last-digit tie)
    latency = round((time.perf_counter() - call.started) * 1e6) / 1000
    ttft = call.ttft_ms
    if ttft is not None:
        ttft = round(ttft * 1000) / 1000
    request_text = response_text = None
    if rt.config.storage.log_bodies:
        request_text = orjson.dumps(call.body).decode()
        if response_body:
            response_text = response_body.decode("utf-8", "replace")
    # positional: 25 keywords cost three times as much (_ROW_FIELDS pins the order)
    writer.enqueue(
        LogRow(
            call.received_at,
            call.request_id,
            call.key_id,
            call.model,
            call.provider,
            call.upstream_model,
            call.status,
            call.error_type,
            call.attempts,
            latency,
            ttft,
            u.input_tokens,
            u.cached_tokens,
            u.cache_write_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            call.cost,
            u.estimated,
            call.stream,
            call.cache_status,
            _ENDPOINTS[call.endpoint],
            call.tenant,
            request_text,
            response_text,
            call.saved_cost,
        )
    )


_NO_USAGE = Usage()
_ROW_FIELDS = (
    "ts",
    "request_id",
    "key_id",
    "requested_model",
    "provider",
    "upstream_model",
    "status",
    "error_type",
    "attempts",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost",
    "usage_estimated",
    "stream",
    "cache_status",
    "endpoint",
    "tenant",
    "request_body",
    "response_body",
    "saved_cost",
)
if LogRow._fields != _ROW_FIELDS:
    raise ImportError(
        "store.LogRow's fields changed order: update accounting.record, which passes them by position"
    )
_ENDPOINTS = {e: e.value for e in Endpoint}

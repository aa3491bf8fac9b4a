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
    row = LogRow(
        ts=call.received_at, request_id=call.request_id, key_id=call.key_id, requested_model=call.model,
        provider=call.provider, upstream_model=call.upstream_model, status=call.status,
        error_type=call.error_type, attempts=call.attempts, latency_ms=latency, ttft_ms=ttft,
        input_tokens=u.input_tokens, cached_tokens=u.cached_tokens, cache_write_tokens=u.cache_write_tokens,
        output_tokens=u.output_tokens, reasoning_tokens=u.reasoning_tokens, cost=call.cost,
        usage_estimated=u.estimated, stream=call.stream, cache_status=call.cache_status,
        endpoint=_ENDPOINTS[call.endpoint], tenant=call.tenant, saved_cost=call.saved_cost,
    )
    if rt.config.storage.log_bodies:
        row.request_body = orjson.dumps(call.body).decode()
        if response_body:
            row.response_body = response_body.decode("utf-8", "replace")
    writer.enqueue(row)


_NO_USAGE = Usage()
_ENDPOINTS = {e: e.value for e in Endpoint}

"""Stage 7: usage → cost. Stage 8: one log row, enqueued for the batch writer (never awaited)."""

from __future__ import annotations

import orjson

from .call import Call, Usage
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
    log_bodies = rt.config.storage.log_bodies
    writer.enqueue(LogRow(
        ts=call.received_at, request_id=call.request_id, key_id=call.key_id, requested_model=call.model,
        provider=call.provider, upstream_model=call.upstream_model, status=call.status,
        error_type=call.error_type, attempts=call.attempts, latency_ms=round(call.elapsed_ms(), 3),
        ttft_ms=None if call.ttft_ms is None else round(call.ttft_ms, 3),
        input_tokens=u.input_tokens, cached_tokens=u.cached_tokens, cache_write_tokens=u.cache_write_tokens,
        output_tokens=u.output_tokens, reasoning_tokens=u.reasoning_tokens, cost=call.cost,
        usage_estimated=u.estimated, stream=call.stream, cache_status=call.cache_status,
        endpoint=call.endpoint.value, tenant=call.tenant, saved_cost=call.saved_cost,
        request_body=orjson.dumps(call.body).decode() if log_bodies else None,
        response_body=response_body.decode("utf-8", "replace") if log_bodies and response_body else None,
    ))


_NO_USAGE = Usage()

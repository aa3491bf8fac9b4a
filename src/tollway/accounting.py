"""Stages 7 and 8, the one exit of every call: ``finish`` prices it (usage → cost), settles its
outcome (status and error type) and hands one ``CallFinished`` event to the sinks (the request log
first). Every path ends here exactly once — whole answers, streams, calls that joined another in
flight, cache hits, refusals and failures, and the calls the gateway makes on its own behalf
(``internal``) — so what the log, metrics and traces see is decided in one place.

The stages before only record facts on the ``Call``: the usage an upstream reported
(``call.usage``), what a shared or cached answer cost (``call.cost``), and the error that ended the
call (``call.failure``; none means it was answered)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from .call import Call, Endpoint, Usage
from .observe.events import CallFinished

if TYPE_CHECKING:
    from .runtime import Runtime


def price(rt: Runtime, call: Call) -> None:
    """Stage 7: what ``call.usage`` costs on the deployment that answered (None: no known price)."""
    usage = call.usage
    if usage is None or not call.provider:
        return
    provider = rt.router.provider(call.provider)
    call.cost = rt.pricer.cost(provider.kind, provider.name, call.upstream_model, call.model, usage)


def finish(rt: Runtime, call: Call, response_body: bytes | None = None) -> None:
    """Stages 7 and 8: price the call unless a stage already did (a shared or cached answer carries
    its cost), settle its outcome, emit its ``CallFinished``. Never awaits: the sinks queue."""
    if call.cost is None and call.usage is not None:
        price(rt, call)
    u = call.usage or _NO_USAGE
    failure = call.failure
    if failure is None:
        status, error_type = 200, ""
    else:
        status, error_type = failure.status, failure.error_type
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
    # positional: 26 keywords cost three times as much (_FIELDS pins the order)
    rt.sinks.emit(
        CallFinished(
            call.received_at,
            call.request_id,
            call.key_id,
            call.model,
            call.provider,
            call.upstream_model,
            status,
            error_type,
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
            call.parent_request_id,
        )
    )


_NO_USAGE = Usage()
_FIELDS = (
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
    "parent_request_id",
)
if CallFinished._fields != _FIELDS:
    raise ImportError(
        "CallFinished's fields changed order: update accounting.finish, which passes them by position"
    )
# the endpoint as a plain str: events and rows carry no enum members (a str subclass, which the
# database drivers and JSON encoders would each have to special-case); a dict lookup is cheaper
# than reading the member's .value
_ENDPOINTS = {e: e.value for e in Endpoint}

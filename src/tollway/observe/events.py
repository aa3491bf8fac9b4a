"""``CallFinished``: the one event a finished call produces — client calls, the calls the gateway
makes on its own behalf (``internal``), refused and failed ones alike. ``accounting.finish`` builds
it once, when the call's outcome is final, and hands it to every sink.

It is also the request log's row (``store.row.LogRow`` is this class): the log writes the event as it
is, so nothing is built twice. A tuple, built positionally: the cheapest object Python makes with
this many fields (``accounting._ROW_FIELDS`` pins the order it is built in)."""

from __future__ import annotations

from typing import NamedTuple


class CallFinished(NamedTuple):
    ts: float  # unix seconds, when the request arrived
    request_id: str
    key_id: str
    requested_model: str
    provider: str
    upstream_model: str
    status: int
    error_type: str
    attempts: int
    latency_ms: float
    ttft_ms: float | None
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float | None  # US dollars; None when the model has no known price
    usage_estimated: bool
    stream: bool
    cache_status: str
    endpoint: str = "chat"
    tenant: str = ""
    request_body: str | None = None  # only when [storage] log_bodies = true
    response_body: str | None = None
    saved_cost: float | None = None  # cache hits and deduplicated calls: what the call would have cost
    parent_request_id: str | None = None  # a call the gateway made for another (``internal``): that call

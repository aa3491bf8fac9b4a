"""One row of the request log: what ``store`` writes and ``tollway logs`` reads."""

from __future__ import annotations

from typing import NamedTuple


class LogRow(NamedTuple):
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

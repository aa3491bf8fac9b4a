"""The nouns that flow through the pipeline: ``Call`` (one client request) and ``Usage``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .protocols.base import ClientProtocol

if TYPE_CHECKING:
    from .errors import TollwayError


class Endpoint(StrEnum):
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    COUNT_TOKENS = "count_tokens"  # Anthropic's /v1/messages/count_tokens


@dataclass(slots=True)
class Usage:
    """Token counts of one call. ``input_tokens`` includes cached and cache-write tokens;
    ``output_tokens`` includes reasoning tokens (that is how OpenAI reports and bills them)."""

    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class Call:
    """One client request, annotated by each pipeline stage."""

    request_id: str
    protocol: ClientProtocol  # the client's: how it is understood and answered (``protocols/``)
    endpoint: Endpoint
    body: dict[str, Any]
    model: str
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    received_at: float = field(default_factory=time.time)
    # the body's bytes as the client sent them (ingress): passed through when nothing in them changes
    raw: bytes = field(default=b"", repr=False)
    # the client's virtual key as sent (ingress); never logged, stored or shown (hence repr=False)
    api_key: str = field(default="", repr=False)
    # headers a stage wants on the response (rate-limit state, budget warnings)
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # the client's Cache-Control request header (ingress), read by the cache stage
    cache_control: str = ""
    # set by later stages
    key_id: str = ""
    tenant: str = ""
    provider: str = ""
    upstream_model: str = ""
    attempts: int = 0
    # the error that ended the call (None: answered); accounting.finish turns it into the logged
    # status and error type
    failure: TollwayError | None = None
    ttft_ms: float | None = None
    usage: Usage | None = None
    cost: float | None = None
    cache_status: str = ""
    cache_enabled: bool = True  # stage 1 turns it off for a key whose caching is off
    saved_cost: float | None = None  # a cache hit or shared call: what it would have cost
    parent_request_id: str | None = None  # a call the gateway makes for another (internal.py)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

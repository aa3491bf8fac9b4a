"""Deployments (one provider serving one model) with their health: a circuit breaker per deployment.

States: ``healthy`` → ``degraded`` after ``degrade_after`` consecutive failures (still tried in its
place; the state says it has been failing) → ``down`` after ``down_after``. A down deployment is
skipped until its cooldown passes; then exactly one request probes it (half-open). A success returns
it to ``healthy``. An upstream ``Retry-After``
takes the deployment out of rotation for that long without counting as a breaker failure twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..config import HealthConfig, ProviderConfig

if TYPE_CHECKING:
    from ..providers.base import Upstream


class State(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(slots=True, eq=False)
class Deployment:
    provider: ProviderConfig
    upstream: Upstream
    model: str  # the public model name this deployment serves
    upstream_model: str  # the name the upstream knows it by
    health: HealthConfig
    state: State = State.HEALTHY
    consecutive_failures: int = 0
    unavailable_until: float = 0.0
    probing: bool = False
    inflight: int = 0
    latency_ema_ms: float | None = None
    requests: int = 0
    failures: int = 0
    last_error: str = ""
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def key(self) -> str:
        return f"{self.provider.name}/{self.upstream_model}"

    def available(self, now: float | None = None) -> bool:
        """May a request be sent now? A down deployment admits one probe after its cooldown."""
        now = self._clock() if now is None else now
        if now < self.unavailable_until:
            return False
        if self.state is State.DOWN:
            return not self.probing
        return True

    def begin(self) -> None:
        self.inflight += 1
        self.requests += 1
        if self.state is State.DOWN:
            self.probing = True

    def succeed(self, latency_ms: float) -> None:
        """A whole answer arrived: the request ends and the breaker closes."""
        self.inflight -= 1
        self.mark_ok(latency_ms)

    def mark_ok(self, latency_ms: float) -> None:
        """The upstream answered (for a stream: its first event arrived): close the breaker."""
        self.probing = False
        self.consecutive_failures = 0
        self.state = State.HEALTHY
        self.unavailable_until = 0.0
        alpha = self.health.latency_alpha
        ema = self.latency_ema_ms
        self.latency_ema_ms = latency_ms if ema is None else ema + alpha * (latency_ms - ema)

    def fail(self, reason: str, *, retry_after: float | None = None, inflight: bool = True) -> None:
        if inflight:
            self.inflight -= 1
        self.probing = False
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error = reason
        now = self._clock()
        if self.consecutive_failures >= self.health.down_after:
            self.state = State.DOWN
            self.unavailable_until = now + self.health.cooldown
        elif self.consecutive_failures >= self.health.degrade_after:
            self.state = State.DEGRADED
        if retry_after is not None and retry_after > 0:
            self.unavailable_until = max(self.unavailable_until, now + retry_after)

    def release(self) -> None:
        """The request ended without saying anything about the upstream's health (client error,
        client disconnect)."""
        self.inflight -= 1
        self.probing = False

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "deployment": self.key,
            "provider": self.provider.name,
            "model": self.model,
            "upstream_model": self.upstream_model,
            "state": self.state.value,
            "available": self.available(now),
            "retry_in_s": round(max(0.0, self.unavailable_until - now), 3),
            "inflight": self.inflight,
            "latency_ema_ms": None if self.latency_ema_ms is None else round(self.latency_ema_ms, 3),
            "requests": self.requests,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }

    def seconds_until_available(self) -> float:
        return max(0.0, self.unavailable_until - self._clock())


def order(candidates: list[Deployment]) -> list[Deployment]:
    """The candidates that may be tried now, in their configured order. A ``down`` deployment past
    its cooldown keeps its place, so its probe is a real request and a recovered primary gets its
    traffic back (demoting it behind a healthy fallback would starve the probe)."""
    if len(candidates) == 1:  # the usual case: no list comprehension (a function call of its own)
        return candidates if candidates[0].available() else []
    return [d for d in candidates if d.available()]

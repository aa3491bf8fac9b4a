"""The circuit breaker of one deployment, on a fake clock."""

from __future__ import annotations

from tollway.config import HealthConfig, ProviderConfig
from tollway.routing.health import Deployment, State, order


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def dep(clock: Clock, name: str = "p", **health: float) -> Deployment:
    cfg = HealthConfig(**health)  # type: ignore[arg-type]
    return Deployment(ProviderConfig(name=name), object(), "m", "m", cfg, _clock=clock)  # type: ignore[arg-type]


def fail(d: Deployment, **kw: float) -> None:
    d.begin()
    d.fail("boom", **kw)  # type: ignore[arg-type]


def test_healthy_degraded_down_probe_healthy() -> None:
    clock = Clock()
    d = dep(clock, degrade_after=1, down_after=3, cooldown=10)
    assert d.state is State.HEALTHY and d.available()
    fail(d)
    assert d.state is State.DEGRADED and d.available()
    fail(d)
    fail(d)
    assert d.state is State.DOWN and not d.available()
    clock.now += 10.01
    assert d.available()  # cooldown over: one probe may go
    d.begin()
    assert not d.available(), "only one probe at a time"
    d.succeed(12.0)
    assert d.state is State.HEALTHY and d.available() and d.consecutive_failures == 0
    assert d.inflight == 0 and d.requests == 4 and d.failures == 3


def test_failed_probe_reopens_the_circuit() -> None:
    clock = Clock()
    d = dep(clock, down_after=1, cooldown=5)
    fail(d)
    clock.now += 6
    fail(d)  # the probe
    assert d.state is State.DOWN and not d.available()
    clock.now += 5.01
    assert d.available()


def test_retry_after_blocks_even_a_healthy_deployment() -> None:
    clock = Clock()
    d = dep(clock, down_after=5)
    fail(d, retry_after=7)
    assert d.state is State.DEGRADED and not d.available()
    assert d.seconds_until_available() == 7
    clock.now += 7.01
    assert d.available()


def test_success_resets_and_latency_ema() -> None:
    clock = Clock()
    d = dep(clock, latency_alpha=0.5)
    d.begin()
    d.succeed(100)
    d.begin()
    d.succeed(50)
    assert d.latency_ema_ms == 75
    snap = d.snapshot()
    assert snap["state"] == "healthy" and snap["latency_ema_ms"] == 75 and snap["inflight"] == 0


def test_order_keeps_configured_order_and_skips_open_circuits() -> None:
    clock = Clock()
    a, b, c = dep(clock, "a", cooldown=5), dep(clock, "b"), dep(clock, "c", down_after=1, cooldown=5)
    fail(a)  # degraded: still first
    fail(c)  # down: skipped
    assert [d.provider.name for d in order([a, b, c])] == ["a", "b"]
    fail(a)
    fail(a)  # down
    assert [d.provider.name for d in order([a, b, c])] == ["b"]
    clock.now += 5.01  # half-open: the primary's probe is the next real request, in its place
    assert [d.provider.name for d in order([a, b, c])] == ["a", "b", "c"]

"""Budget calendars in a time zone, what a call reserves, and what operators may ask for."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tollway.call import Call, Endpoint
from tollway.config import parse_config
from tollway.errors import SpecError
from tollway.keys.spec import KeySpec, parse_expires, parse_limits
from tollway.limits.budget import reservation
from tollway.limits.period import current, start_of
from tollway.limits.ratelimit import duration, estimate_tokens
from tollway.limits.rules import Action, BudgetRule, Limits, Period
from tollway.pricing import Pricer
from tollway.protocols.openai import OPENAI
from tollway.providers.openai import OpenAICompatible
from tollway.routing import Router

PARIS = ZoneInfo("Europe/Paris")


def ts(text: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def test_periods_follow_the_configured_time_zone() -> None:
    now = ts("2025-03-30 12:00")  # the day Paris moves to summer time: a 23-hour day
    day = current(Period.DAY, PARIS, now)
    assert (day.id, day.start, day.end) == ("2025-03-30", ts("2025-03-30 00:00"), ts("2025-03-31 00:00"))
    assert day.end is not None and day.end - day.start == 23 * 3600
    week = current(Period.WEEK, PARIS, now)
    assert (week.id, week.start) == ("w2025-03-24", ts("2025-03-24 00:00"))
    month = current(Period.MONTH, PARIS, ts("2025-12-31 23:30"))
    assert (month.id, month.start, month.end) == ("2025-12", ts("2025-12-01 00:00"), ts("2026-01-01 00:00"))
    assert current(Period.ALL, PARIS, now).end is None
    # 23:30 in Paris on the 1st is still the 1st there, but already the 2nd nowhere near UTC-midnight
    assert current(Period.DAY, PARIS, ts("2025-06-01 23:30")).id == "2025-06-01"
    assert current(Period.DAY, ZoneInfo("UTC"), ts("2025-06-01 23:30")).id == "2025-06-01"
    assert current(Period.DAY, ZoneInfo("Asia/Tokyo"), ts("2025-06-01 23:30")).id == "2025-06-02"
    assert start_of("24h", PARIS, now) == now - 86400
    with pytest.raises(ValueError, match="unknown period"):
        start_of("fortnight", PARIS, now)


def test_reservation_prices_the_dearest_candidate() -> None:
    cfg = parse_config(
        {
            "providers": [
                {"name": "cheap", "kind": "mock", "base_url": "http://127.0.0.1:1/v1", "models": ["m"]},
                {
                    "name": "dear",
                    "kind": "mock",
                    "base_url": "http://127.0.0.1:2/v1",
                    "models": ["m"],
                    "priority": 1,
                },
            ],
            "prices": {"cheap/m": {"input": 1, "output": 2}, "dear/m": {"input": 10, "output": 20}},
        }
    )
    router = Router(cfg, OpenAICompatible)
    call = Call(
        "r",
        OPENAI,
        Endpoint.CHAT,
        {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 100, "n": 2},
        "m",
        False,
    )
    tokens_in, tokens_out = estimate_tokens(call, 4096)
    assert (tokens_in, tokens_out) == (3 + 4 + 10, 200)
    assert reservation(Pricer(cfg.prices), router.candidates("m"), tokens_in, tokens_out) == pytest.approx(
        (17 * 10 + 200 * 20) / 1e6
    )
    call.body.pop("max_tokens")
    assert estimate_tokens(call, 512)[1] == 1024  # the configured allowance, per choice


def test_key_spec_validation() -> None:
    spec = KeySpec.parse(
        {
            "name": "ci-bot",
            "tenant": "acme",
            "rpm": 10,
            "budget": 5,
            "budget_period": "day",
            "budget_action": "warn",
            "models": "gpt-4o-mini, gpt-4o*",
            "expires": "2030-01-01",
        }
    )
    assert spec.limits == Limits(10, None, None, BudgetRule(5.0, Period.DAY, Action.WARN))
    assert spec.models == ("gpt-4o-mini", "gpt-4o*") and spec.expires_at == ts(
        "2030-01-01 00:00", ZoneInfo("UTC")
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "a b"}, "name"),
        ({"name": "a", "rpm": 0}, "rpm"),
        ({"name": "a", "budget": -1}, "budget"),
        ({"name": "a", "budget": 1, "budget_period": "year"}, "budget_period"),
        ({"name": "a", "expires": "soon"}, "expires"),
        ({"name": "a", "colour": 1}, "colour"),
        ({"name": "a", "budget_action": "warn"}, "budget amount"),
    ]
    for bad, field in cases:
        with pytest.raises(SpecError, match=field):
            KeySpec.parse(bad)
    base = parse_limits({"rpm": 5, "budget": 10})
    assert parse_limits({"budget_action": "warn"}, base).budget == BudgetRule(10.0, Period.MONTH, Action.WARN)
    assert parse_limits({"budget": None}, base) == Limits(5, None, None, None)
    assert parse_expires("2h", now=1000.0) == 1000.0 + 7200


def test_openai_style_reset_durations() -> None:
    assert [duration(s) for s in (0.02, 1.5, 59.94, 360, 3723)] == ["20ms", "1.5s", "59.9s", "6m0s", "1h2m3s"]


def test_budget_config_is_validated() -> None:
    cfg = parse_config(
        {"budgets": {"timezone": "Europe/Paris", "gateway": [{"amount": 100, "action": "warn"}]}}
    )
    assert cfg.budgets.gateway[0].period == "month"
    from tollway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"budgets\.timezone: unknown time zone"):
        parse_config({"budgets": {"timezone": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match=r"budgets.gateway\[0\].period"):
        parse_config({"budgets": {"gateway": [{"amount": 1, "period": "year"}]}})
    with pytest.raises(ConfigError, match=r"limits\.on_unavailable"):
        parse_config({"limits": {"on_unavailable": "shrug"}})

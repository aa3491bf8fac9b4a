"""Periods on the calendar of the configured time zone (``budgets.timezone``): which budget period is
current, when it began and when it ends, and where a reporting period begins.

The one calendar of the gateway: budgets, ``/admin/spend``, ``/stats`` and ``tollway spend`` all
start "today" at the same instant, whatever the local time of the host. A period's id names its
budget counter, so a new day (week, month) starts a new counter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .rules import Period


@dataclass(frozen=True, slots=True)
class Span:
    id: str  # "2025-03-07", "w2025-03-03", "2025-03" or "all"
    start: float  # unix seconds
    end: float | None  # unix seconds; None for all time


def current(period: Period, tz: ZoneInfo, now: float) -> Span:
    if period is Period.ALL:
        return Span("all", 0.0, None)
    local = datetime.fromtimestamp(now, tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        start, end = midnight, midnight + timedelta(days=1)
        ident = start.strftime("%Y-%m-%d")
    elif period is Period.WEEK:
        start = midnight - timedelta(days=midnight.weekday())
        end = start + timedelta(days=7)
        ident = "w" + start.strftime("%Y-%m-%d")
    else:
        start = midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        ident = start.strftime("%Y-%m")
    # Wall-clock arithmetic, then re-attach the zone: the instant of local midnight even across DST.
    return Span(ident, _instant(start, tz), _instant(end, tz))


def _instant(wall: datetime, tz: ZoneInfo) -> float:
    return datetime(wall.year, wall.month, wall.day, tzinfo=tz).timestamp()


REPORT_PERIODS = ("today", "week", "month", "all")


def start_of(name: str, tz: ZoneInfo, now: float) -> float:
    """Unix time where a reporting period begins: "today" (midnight in ``tz``), "week" (Monday's
    midnight), "month" (the 1st's midnight), "all" (0), or "<n>h" / "<n>d" (that long before now)."""
    if name == "today":
        return current(Period.DAY, tz, now).start
    if name in REPORT_PERIODS:
        return current(Period(name), tz, now).start
    if name[:-1].isdigit() and name[-1:] in ("h", "d"):
        return now - int(name[:-1]) * (3600 if name[-1] == "h" else 86400)
    raise ValueError(f"unknown period {name!r}; use {', '.join(REPORT_PERIODS)} or a duration like 24h, 7d")

"""One calendar for every period: budgets, ``/stats``, ``/admin/spend`` and ``tollway spend`` start
"today" (week, month) at the same instant, midnight in ``budgets.timezone``, whatever the host's
local time (they were once 8 hours apart on a PST host)."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from conftest import GatewayFactory, two_provider_config
from rich.console import Console
from test_store import make_row

from tollway.cli.reports import print_spend
from tollway.limits.period import start_of
from tollway.mock import RunningMock
from tollway.server import RunningServer
from tollway.store import LogStore

ADMIN = "admin-secret-token"
# Far from UTC and from any likely host zone, so that a local-time or UTC calendar shows.
ZONE = "Pacific/Kiritimati"  # UTC+14


def test_start_of() -> None:
    tz = ZoneInfo("America/Los_Angeles")
    now = datetime(2024, 5, 8, 15, 30, tzinfo=tz).timestamp()  # a Wednesday, in the zone
    assert datetime.fromtimestamp(start_of("today", tz, now), tz) == datetime(2024, 5, 8, tzinfo=tz)
    assert datetime.fromtimestamp(start_of("week", tz, now), tz) == datetime(2024, 5, 6, tzinfo=tz)
    assert datetime.fromtimestamp(start_of("month", tz, now), tz) == datetime(2024, 5, 1, tzinfo=tz)
    assert start_of("all", tz, now) == 0.0
    assert start_of("24h", tz, now) == now - 86400
    assert start_of("7d", tz, now) == now - 7 * 86400
    assert start_of("today", tz, time.time()) <= time.time()
    with pytest.raises(ValueError, match="unknown period"):
        start_of("fortnight", tz, now)


def test_start_of_is_the_zones_midnight_not_utcs() -> None:
    now = datetime(2024, 5, 8, 3, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # 17:00 on the 8th in Kiritimati
    kiritimati = start_of("today", ZoneInfo(ZONE), now)
    assert kiritimati == datetime(2024, 5, 7, 10, 0, tzinfo=ZoneInfo("UTC")).timestamp()
    assert start_of("today", ZoneInfo("UTC"), now) == datetime(2024, 5, 8, tzinfo=ZoneInfo("UTC")).timestamp()


async def get(gw: RunningServer, path: str) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}{path}", headers=headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_stats_and_admin_spend_start_today_at_the_same_instant(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    cfg = two_provider_config(mock_a.url, mock_b.url, admin={"token": ADMIN}, budgets={"timezone": ZONE})
    gw = await gateway_factory(cfg)
    for period in ("today", "week", "month"):
        before = start_of(period, ZoneInfo(ZONE), time.time())
        stats = await get(gw, f"/stats?period={period}")
        spend = await get(gw, f"/admin/spend?period={period}")
        after = start_of(period, ZoneInfo(ZONE), time.time())
        assert stats["since"] == spend["since"] and before <= stats["since"] <= after


async def test_cli_spend_counts_on_the_budgets_calendar(tmp_path: Path) -> None:
    tz = ZoneInfo(ZONE)
    midnight = start_of("today", tz, time.time())
    url = f"sqlite:///{tmp_path}/log.db"
    store = await LogStore.open(url)
    await store.insert([make_row(ts=midnight - 60, cost=0.25), make_row(ts=midnight + 1, cost=0.5)])
    await store.close()

    console = Console(record=True, width=200)
    await print_spend(url, ["provider"], "today", timezone=ZONE, console=console)
    text = console.export_text()
    assert "$0.500000" in text and "$0.750000" not in text and "$0.250000" not in text

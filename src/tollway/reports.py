"""Rich tables of the request log for ``tollway logs`` and ``tollway spend``."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tollway.store import LogRow, LogStore, SpendRow

UNKNOWN = "—"
PERIODS = ("today", "week", "month", "all")
DEFAULT_SPEND_BY = ("provider", "model")
_DURATION = re.compile(r"^(\d+)([hd])$")

_GROUP_TITLES = {
    "provider": "Provider",
    "model": "Model",
    "upstream_model": "Upstream model",
    "key": "Key",
    "tenant": "Tenant",
    "day": "Day (UTC)",
}


def money(cost: float | None) -> str:
    return UNKNOWN if cost is None else f"${cost:.6f}"


def _ms(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:,.0f}"


def _status(row: LogRow) -> Text:
    ok = 200 <= row.status < 400
    label = str(row.status) if ok or not row.error_type else f"{row.status} {row.error_type}"
    return Text(label, style="green" if ok else "red")


def logs_table(rows: list[LogRow]) -> Table:
    """One line per call, in the order given. "~" marks token counts tollway estimated itself."""
    table = Table(title="Recent requests", header_style="bold")
    # Fixed-format columns never wrap, so in a narrow terminal the free-text columns give way.
    table.add_column("Time", no_wrap=True)
    table.add_column("Request", no_wrap=True)
    table.add_column("Model")
    table.add_column("Upstream")
    table.add_column("Status")
    table.add_column("Att", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("TTFT", justify="right", no_wrap=True)
    table.add_column("In", justify="right", no_wrap=True)
    table.add_column("Out", justify="right", no_wrap=True)
    table.add_column("Cost", justify="right", no_wrap=True)
    table.add_column("Cache")
    for row in rows:
        mark = "~" if row.usage_estimated else ""
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(row.ts)),
            row.request_id[-8:],
            row.requested_model,
            f"{row.provider}/{row.upstream_model}" if row.provider else UNKNOWN,
            _status(row),
            str(row.attempts),
            _ms(row.latency_ms),
            _ms(row.ttft_ms),
            f"{mark}{row.input_tokens:,}",
            f"{mark}{row.output_tokens:,}",
            money(row.cost),
            row.cache_status,
        )
    return table


def spend_table(rows: list[SpendRow], title: str, *, by: Sequence[str] | None = None) -> Table:
    """Totals per group with a total line. Group columns come from ``by`` or the rows themselves."""
    keys = list(by) if by is not None else (list(rows[0].group) if rows else [])
    table = Table(title=title, header_style="bold", show_footer=bool(rows))
    for index, key in enumerate(keys):
        table.add_column(_GROUP_TITLES.get(key, key), footer="Total" if index == 0 else "")
    numbers = [
        ("Requests", sum(r.requests for r in rows)),
        ("Errors", sum(r.errors for r in rows)),
        ("In", sum(r.input_tokens for r in rows)),
        ("Cached", sum(r.cached_tokens for r in rows)),
        ("Out", sum(r.output_tokens for r in rows)),
        ("Reasoning", sum(r.reasoning_tokens for r in rows)),
    ]
    for name, total in numbers:
        table.add_column(name, justify="right", footer=f"{total:,}", no_wrap=True)
    table.add_column("Cost", justify="right", footer=money(sum(r.cost for r in rows)), no_wrap=True)
    # what cache hits and deduplicated calls did not spend
    table.add_column("Saved", justify="right", footer=money(sum(r.saved for r in rows)), no_wrap=True)
    unpriced = sum(r.unpriced for r in rows)
    table.add_column("Unpriced", justify="right", footer=f"{unpriced:,}" if unpriced else "")
    for r in rows:
        table.add_row(
            *(r.group.get(key, "") or UNKNOWN for key in keys),
            *(
                f"{value:,}"
                for value in (
                    r.requests,
                    r.errors,
                    r.input_tokens,
                    r.cached_tokens,
                    r.output_tokens,
                    r.reasoning_tokens,
                )
            ),
            money(r.cost),
            money(r.saved),
            f"{r.unpriced:,}" if r.unpriced else "",
        )
    if not rows:
        table.caption = "no requests in this period"
    elif unpriced:
        table.caption = f"{unpriced:,} requests have no known price; their cost is not in the totals"
    return table


def period_start(period: str, now: float | None = None) -> float:
    """Unix time where ``period`` begins, in the local time zone.

    "today": midnight; "week": Monday's midnight; "month": midnight of the 1st; "all": 0;
    "<n>h" / "<n>d": that many hours / days before now.
    """
    now = time.time() if now is None else now
    if period == "all":
        return 0.0
    duration = _DURATION.match(period)
    if duration:
        unit = 3600 if duration.group(2) == "h" else 86400
        return now - int(duration.group(1)) * unit
    # Naive local datetimes: .timestamp() then applies the offset in force at that midnight (DST).
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "today":
        return midnight.timestamp()
    if period == "week":
        return (midnight - timedelta(days=midnight.weekday())).timestamp()
    if period == "month":
        return midnight.replace(day=1).timestamp()
    raise ValueError(f"unknown period {period!r}; use one of {PERIODS} or a duration like 24h, 7d")


async def key_names(store: LogStore, rows: list[SpendRow]) -> list[SpendRow]:
    """Show keys by name: the log records key ids (names are looked up in the key table)."""
    from tollway.keys.repository import KeyRepository

    names = await KeyRepository(store.db).names(r.group.get("key", "") for r in rows)
    for r in rows:
        key = r.group.get("key", "")
        if key in names:
            r.group["key"] = names[key]
    return rows


_PERIOD_TITLES = {"today": "today", "week": "this week", "month": "this month", "all": "all time"}


async def print_logs(
    url: str,
    limit: int = 50,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | None = None,
    console: Console | None = None,
) -> None:
    """Print the newest ``limit`` log rows of the store at ``url``."""
    store = await LogStore.open(url)
    try:
        rows = await store.recent(limit, model=model, provider=provider, status=status)
    finally:
        await store.close()
    (console or Console()).print(logs_table(rows))


async def print_spend(
    url: str,
    by: Sequence[str] = DEFAULT_SPEND_BY,
    period: str | None = None,
    *,
    console: Console | None = None,
) -> None:
    """Print spend grouped by ``by`` over ``period``; with no period, today and this month."""
    keys = list(by) or list(DEFAULT_SPEND_BY)
    periods = [period] if period else ["today", "month"]
    now = time.time()
    starts = [(name, period_start(name, now)) for name in periods]  # reject a bad period before opening
    out = console or Console()
    store = await LogStore.open(url)
    try:
        for name, since in starts:
            rows = await store.spend(since=since, group_by=keys)
            if "key" in keys:
                rows = await key_names(store, rows)
            title = f"Spend {_PERIOD_TITLES.get(name, 'over the last ' + name)} by {', '.join(keys)}"
            out.print(spend_table(rows, title, by=keys))
    finally:
        await store.close()

"""Rich tables of the request log for ``tollway logs`` and ``tollway spend``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..limits.period import start_of
from ..store import LogRow, LogStore, SpendRow

UNKNOWN = "—"
DEFAULT_SPEND_BY = ("provider", "model")

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


WIDE = 120
"""Terminal columns from which every column is shown; narrower terminals get the essential ones
(rich would otherwise squeeze free-text columns, model and provider included, down to "…")."""


def logs_table(rows: list[LogRow], *, width: int = WIDE) -> Table:
    """One line per call, in the order given. "~" marks token counts tollway estimated itself.
    Below ``WIDE`` columns only the essential columns are shown."""
    wide = width >= WIDE
    columns = [c for c in _LOG_COLUMNS if wide or c.essential]
    table = Table(
        title="Recent requests",
        header_style="bold",
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
        pad_edge=wide,
        padding=(0, 1) if wide else (0, 1, 0, 0),
    )
    for c in columns:
        # Fixed-format columns never wrap, so in a narrow terminal the free-text columns give way:
        # folded onto more lines, never cut short.
        table.add_column(
            c.title, justify=c.justify, no_wrap=c.fixed, overflow="ellipsis" if c.fixed else "fold"
        )
    for row in rows:
        table.add_row(*(c.cell(row) for c in columns))
    return table


@dataclass(frozen=True, slots=True)
class _LogColumn:
    title: str
    cell: Callable[[LogRow], str | Text]
    essential: bool = True
    fixed: bool = True  # a fixed format: never wrapped
    justify: Literal["left", "right"] = "right"


def _tokens(count: int, row: LogRow) -> str:
    return f"{'~' if row.usage_estimated else ''}{count:,}"


_LOG_COLUMNS = (
    _LogColumn("Time", lambda r: time.strftime("%H:%M:%S", time.localtime(r.ts)), justify="left"),
    _LogColumn("Request", lambda r: r.request_id[-8:], essential=False, justify="left"),
    _LogColumn("Model", lambda r: r.requested_model, fixed=False, justify="left"),
    _LogColumn(
        "Upstream",
        lambda r: f"{r.provider}/{r.upstream_model}" if r.provider else UNKNOWN,
        fixed=False,
        justify="left",
    ),
    _LogColumn("Status", _status, fixed=False, justify="left"),
    _LogColumn("Att", lambda r: str(r.attempts), essential=False),
    _LogColumn("ms", lambda r: _ms(r.latency_ms)),
    _LogColumn("TTFT", lambda r: _ms(r.ttft_ms), essential=False),
    _LogColumn("In", lambda r: _tokens(r.input_tokens, r)),
    _LogColumn("Out", lambda r: _tokens(r.output_tokens, r)),
    _LogColumn("Cost", lambda r: money(r.cost)),
    _LogColumn("Cache", lambda r: r.cache_status, essential=False, fixed=False, justify="left"),
)


def spend_table(
    rows: list[SpendRow], title: str, *, by: Sequence[str] | None = None, width: int = WIDE
) -> Table:
    """Totals per group with a total line. Group columns come from ``by`` or the rows themselves.
    Below ``WIDE`` columns the cached and reasoning columns are left out, and the saved and unpriced
    ones unless they have something to show."""
    wide = width >= WIDE
    saved = wide or any(r.saved for r in rows)
    unpriced = sum(r.unpriced for r in rows)
    show_unpriced = wide or bool(unpriced)
    keys = list(by) if by is not None else (list(rows[0].group) if rows else [])
    table = Table(
        title=title,
        header_style="bold",
        show_footer=bool(rows),
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
        pad_edge=wide,
        padding=(0, 1) if wide else (0, 1, 0, 0),
    )
    for index, key in enumerate(keys):
        table.add_column(_GROUP_TITLES.get(key, key), footer="Total" if index == 0 else "", overflow="fold")
    counts: list[tuple[str, Callable[[SpendRow], int]]] = [
        ("Requests", lambda r: r.requests),
        ("Errors", lambda r: r.errors),
        ("In", lambda r: r.input_tokens),
        ("Cached", lambda r: r.cached_tokens),
        ("Out", lambda r: r.output_tokens),
        ("Reasoning", lambda r: r.reasoning_tokens),
    ]
    if not wide:
        counts = [c for c in counts if c[0] not in ("Cached", "Reasoning")]
    for name, count in counts:
        table.add_column(name, justify="right", footer=f"{sum(count(r) for r in rows):,}", no_wrap=True)
    table.add_column("Cost", justify="right", footer=money(sum(r.cost for r in rows)), no_wrap=True)
    if saved:  # what cache hits and deduplicated calls did not spend
        table.add_column("Saved", justify="right", footer=money(sum(r.saved for r in rows)), no_wrap=True)
    if show_unpriced:
        table.add_column("Unpriced", justify="right", footer=f"{unpriced:,}" if unpriced else "")
    for r in rows:
        cells = [r.group.get(key, "") or UNKNOWN for key in keys]
        cells += [f"{count(r):,}" for _, count in counts]
        cells.append(money(r.cost))
        if saved:
            cells.append(money(r.saved))
        if show_unpriced:
            cells.append(f"{r.unpriced:,}" if r.unpriced else "")
        table.add_row(*cells)
    if not rows:
        table.caption = "no requests in this period"
    elif unpriced:
        table.caption = f"{unpriced:,} requests have no known price; their cost is not in the totals"
    return table


async def key_names(store: LogStore, rows: list[SpendRow]) -> list[SpendRow]:
    """Show keys by name: the log records key ids (names are looked up in the key table)."""
    from ..keys.repository import KeyRepository

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
    out = console or Console()
    out.print(logs_table(rows, width=out.width))


async def print_spend(
    url: str,
    by: Sequence[str] = DEFAULT_SPEND_BY,
    period: str | None = None,
    *,
    timezone: str = "UTC",
    console: Console | None = None,
) -> None:
    """Print spend grouped by ``by`` over ``period``; with no period, today and this month. Periods
    start on the calendar of ``timezone`` (the config's ``budgets.timezone``)."""
    keys = list(by) or list(DEFAULT_SPEND_BY)
    periods = [period] if period else ["today", "month"]
    now = time.time()
    tz = ZoneInfo(timezone)
    starts = [(name, start_of(name, tz, now)) for name in periods]  # reject a bad period before opening
    out = console or Console()
    store = await LogStore.open(url)
    try:
        for name, since in starts:
            rows = await store.spend(since=since, group_by=keys)
            if "key" in keys:
                rows = await key_names(store, rows)
            title = f"Spend {_PERIOD_TITLES.get(name, 'over the last ' + name)} by {', '.join(keys)}"
            out.print(spend_table(rows, title, by=keys, width=out.width))
    finally:
        await store.close()

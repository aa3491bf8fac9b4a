"""The rich tables behind ``tollway logs`` and ``tollway spend``."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from test_store import make_row

from tollway.cli.reports import logs_table, print_logs, print_spend, spend_table
from tollway.store import LogStore, SpendRow


def render(table: Table) -> str:
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def spend_row(provider: str, model: str, cost: float, unpriced: int = 0) -> SpendRow:
    return SpendRow(
        group={"provider": provider, "model": model},
        requests=3,
        errors=1,
        input_tokens=1500,
        cached_tokens=0,
        cache_write_tokens=0,
        output_tokens=200,
        reasoning_tokens=0,
        cost=cost,
        unpriced=unpriced,
    )


def test_logs_table_shows_each_column() -> None:
    ts = datetime(2024, 5, 6, 14, 3, 9).timestamp()  # local time
    priced = make_row(ts=ts, request_id="req_0123456789abcdef", cost=0.000123, cache_status="hit")
    unpriced = make_row(
        cost=None, usage_estimated=True, status=502, error_type="upstream_error", ttft_ms=None
    )
    text = render(logs_table([priced, unpriced]))
    assert "14:03:09" in text
    assert "89abcdef" in text and "req_0123" not in text
    assert "openai/gpt-4o-mini-2024-07-18" in text
    assert "$0.000123" in text
    assert "—" in text
    assert "~100" in text and "~50" in text
    assert "502 upstream_error" in text
    assert "hit" in text


def test_spend_table_has_groups_and_totals() -> None:
    text = render(spend_table([spend_row("openai", "m1", 1.5), spend_row("groq", "m2", 0.25, 2)], "Today"))
    assert "Today" in text
    assert "openai" in text and "m2" in text
    assert "3,000" in text  # total input tokens
    assert "$1.750000" in text
    assert "2 requests have no known price" in text
    assert "no requests" in render(spend_table([], "Empty", by=["provider"]))


async def test_print_logs_and_spend(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    store = await LogStore.open(url)
    await store.insert([make_row(ts=time.time(), request_id="req_abcdef12345678", cost=0.5)])
    await store.close()

    console = Console(record=True, width=200)
    await print_logs(url, 10, console=console)
    await print_spend(url, ["provider", "model"], None, console=console)
    await print_spend(url, ["day"], "all", console=console)
    text = console.export_text()
    assert "12345678" in text
    assert "Spend today by provider, model" in text
    assert "Spend this month by provider, model" in text
    assert "Spend all time by day" in text
    assert text.count("$0.500000") >= 4  # a row and a total in each spend table, and the log line


def render_at(table: Table, width: int) -> str:
    console = Console(record=True, width=width)
    console.print(table)
    return console.export_text()


def test_an_80_column_terminal_still_shows_model_provider_status_and_cost() -> None:
    """rich squeezes free-text columns first: with every column at 80 columns the model, upstream
    and status cells were cut down to "…". Narrow terminals get the essential columns, and a long
    name is folded onto more lines rather than cut."""
    failed = make_row(status=502, error_type="upstream_error", cost=None)
    ok = make_row(cost=0.000123, upstream_model="gpt-4o-mini")
    text = render_at(logs_table([ok, failed], width=80), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "gpt-4o-mini" in text and "openai/gpt-4o-" in text and "mini-2024-07-1" in text
    assert "502" in text and "200" in text and "$0.000123" in text
    assert "…" not in text  # openai/gpt-4o-mini-2024-07-18 and "502 upstream_error" are folded, not cut
    assert "TTFT" not in text and "TTFT" in render(logs_table([ok]))  # wide terminals keep every column

    rows = [spend_row("openai", "gpt-4o-mini", 1.5), spend_row("anthropic", "claude-3-5-haiku", 0.25)]
    text = render_at(spend_table(rows, "Today", width=80), 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "anthropic" in text and "claude-3-5-haiku" in text and "$1.750000" in text and "…" not in text
    assert "Unpriced" not in text and "Reasoning" not in text
    saving = SpendRow(
        group={"provider": "openai", "model": "m"},
        requests=1,
        errors=0,
        input_tokens=1,
        cached_tokens=0,
        cache_write_tokens=0,
        output_tokens=1,
        reasoning_tokens=0,
        cost=0.0,
        unpriced=2,
        saved=0.5,
    )
    text = render_at(spend_table([saving], "Today", width=80), 80)
    assert "Saved" in text and "$0.500000" in text and "Unpriced" in text  # shown when they have something

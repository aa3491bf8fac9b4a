"""LogWriter: batching, flushing on stop, surviving store failures, dropping when full."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from test_store import make_row, pg_database, store_url  # noqa: F401  (fixtures shared with store tests)

from tollway.store import LogRow, LogStore, LogWriter
from tollway.store import writer as writer_module


class FakeStore:
    """Records each batch; raises for the first ``failures`` calls, or while ``down`` is set."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[LogRow]] = []
        self.failures = failures
        self.down = False
        self.calls = 0

    async def insert(self, rows: Sequence[LogRow]) -> None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.down or self.calls <= self.failures:
            raise ConnectionRefusedError("connection refused (fake)")
        self.batches.append(list(rows))

    @property
    def rows(self) -> list[LogRow]:
        return [row for batch in self.batches for row in batch]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "RETRY_MIN_DELAY", 0.001)
    monkeypatch.setattr(writer_module, "RETRY_MAX_DELAY", 0.01)


def rows(n: int) -> list[LogRow]:
    return [make_row(ts=float(i), request_id=f"r{i}") for i in range(n)]


async def test_many_rows_few_inserts() -> None:
    store = FakeStore()
    writer = LogWriter(store, batch_size=100, flush_interval=10.0)
    await writer.start()
    for row in rows(1000):
        writer.enqueue(row)
    await writer.flush()
    assert [len(b) for b in store.batches] == [100] * 10
    assert store.rows == rows(1000)  # in order, each once
    assert (writer.written, writer.pending, writer.dropped) == (1000, 0, 0)
    await writer.stop()


async def test_full_batch_is_written_without_waiting_for_the_interval() -> None:
    store = FakeStore()
    writer = LogWriter(store, batch_size=50, flush_interval=30.0)
    await writer.start()
    for row in rows(50):
        writer.enqueue(row)
    async with asyncio.timeout(2):
        while writer.written < 50:
            await asyncio.sleep(0.005)
    await writer.stop()


async def test_partial_batch_is_written_after_the_interval() -> None:
    store = FakeStore()
    writer = LogWriter(store, batch_size=500, flush_interval=0.02)
    await writer.start()
    for row in rows(3):
        writer.enqueue(row)
    async with asyncio.timeout(2):
        while writer.written < 3:
            await asyncio.sleep(0.005)
    assert len(store.batches) == 1
    await writer.stop()


async def test_stop_flushes_everything(store_url: str) -> None:  # noqa: F811
    store = await LogStore.open(store_url)
    writer = LogWriter(store)
    await writer.start()
    for i in range(10_000):
        writer.enqueue(make_row(ts=float(i), request_id=f"r{i}"))
    await writer.stop()
    try:
        assert await store.count() == 10_000
        assert (writer.written, writer.pending, writer.dropped) == (10_000, 0, 0)
    finally:
        await store.close()


async def test_failed_writes_are_retried_without_losing_rows(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore(failures=3)
    writer = LogWriter(store, batch_size=20)
    await writer.start()
    for row in rows(50):
        writer.enqueue(row)
    with caplog.at_level(logging.WARNING, logger="tollway.store"):
        await writer.flush()
    assert store.rows == rows(50)
    assert (writer.written, writer.failures, writer.pending) == (50, 3, 0)
    errors = [r for r in caplog.records if r.name == "tollway.store" and r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert "connection refused" in errors[0].getMessage()
    await writer.stop()


async def test_rows_keep_queueing_while_the_store_is_down() -> None:
    store = FakeStore()
    store.down = True
    writer = LogWriter(store, batch_size=10, flush_interval=0.01)
    await writer.start()
    for row in rows(25):
        writer.enqueue(row)
    await asyncio.sleep(0.05)
    assert writer.written == 0 and writer.pending == 25 and store.calls > 1
    for row in rows(40)[25:]:
        writer.enqueue(row)
    store.down = False
    await writer.stop()
    assert store.rows == rows(40)
    assert (writer.written, writer.dropped) == (40, 0)


async def test_full_queue_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    writer = LogWriter(store, max_queue=10)
    with caplog.at_level(logging.WARNING, logger="tollway.store"):
        for row in rows(25):
            writer.enqueue(row)  # not started: nothing drains
    assert (writer.pending, writer.dropped) == (10, 15)
    warnings = [r for r in caplog.records if r.name == "tollway.store"]
    assert len(warnings) == 1  # rate limited
    await writer.stop()
    assert store.rows == rows(10)
    writer.enqueue(make_row())  # after stop: dropped, not raised
    assert writer.dropped == 16


async def test_stop_gives_up_after_timeout_when_store_stays_down(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.down = True
    writer = LogWriter(store, flush_interval=0.01)
    await writer.start()
    for row in rows(7):
        writer.enqueue(row)
    with caplog.at_level(logging.ERROR, logger="tollway.store"):
        await writer.stop(timeout=0.1)
    assert (writer.written, writer.dropped, writer.pending) == (0, 7, 0)
    assert "7 rows lost" in caplog.records[-1].getMessage()

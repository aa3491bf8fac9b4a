"""``LogWriter``: takes log rows off the request path and writes them to the store in batches.

``enqueue`` only appends to an in-memory queue. One background task writes the queue's head in
batches of up to ``batch_size`` rows, as soon as a batch is full or ``flush_interval`` seconds after
the last write. Rows leave the queue only once written, so a failed write (PostgreSQL restarting, a
locked SQLite file) loses nothing: the writer logs, backs off and retries the same batch while new
rows keep queueing, up to ``max_queue`` rows; beyond that new rows are dropped and counted.

Delivery is at least once: if a commit succeeds but its acknowledgement is lost, the retry writes
that batch again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from tollway.store.row import LogRow

logger = logging.getLogger("tollway.store")

DROP_WARNING_INTERVAL = 10.0  # seconds between "queue full" warnings
RETRY_MIN_DELAY = 0.05
RETRY_MAX_DELAY = 5.0


class RowSink(Protocol):
    """What the writer needs of a store (``LogStore`` is one; tests pass fakes)."""

    async def insert(self, rows: Sequence[LogRow]) -> None: ...


class LogWriter:
    def __init__(
        self,
        store: RowSink,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_queue: int = 100_000,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0:
            raise ValueError("batch_size and max_queue must be >= 1 and flush_interval > 0")
        self._store = store
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.written = 0
        self.dropped = 0
        self.failures = 0  # failed insert attempts, each retried
        self._queue: deque[LogRow] = deque()
        self._accepted = 0  # rows ever enqueued
        self._removed = 0  # rows ever taken off the queue's head (written, or abandoned by stop)
        self._lock = asyncio.Lock()  # one writer of the queue's head at a time
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._last_drop_warning = -DROP_WARNING_INTERVAL

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written (including a batch being retried)."""
        return len(self._queue)

    def enqueue(self, row: LogRow) -> None:
        """Queue one row for writing. Never blocks, never raises; drops the row when full or stopped."""
        if self._closed or len(self._queue) >= self.max_queue:
            self._drop()
            return
        self._queue.append(row)
        self._accepted += 1
        if len(self._queue) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _drop(self) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARNING_INTERVAL:
            self._last_drop_warning = now
            reason = "the writer is stopped" if self._closed else f"the queue holds {self.max_queue} rows"
            logger.warning("dropping request log rows: %s (%d dropped so far)", reason, self.dropped)

    async def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="tollway-log-writer")

    async def flush(self) -> None:
        """Return once every row enqueued before this call is written (retrying failed writes)."""
        target = self._accepted
        async with self._lock:
            while self._removed < target and self._queue:
                await self._write_head()

    async def stop(self, *, timeout: float = 10.0) -> None:
        """Flush everything and stop. Rows enqueued afterwards are dropped.

        If the store stays unreachable for ``timeout`` seconds the remaining rows are abandoned
        (counted in ``dropped`` and logged), so that shutdown cannot hang forever.
        """
        self._closed = True
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        try:
            async with asyncio.timeout(timeout):
                if task is not None:
                    await task  # its last act is a final flush
                await self.flush()
        except TimeoutError:
            lost = len(self._queue)
            self._removed += lost
            self.dropped += lost
            self._queue.clear()
            logger.error("log writer stopped after %.1fs with the store failing; %d rows lost", timeout, lost)
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self) -> None:
        while not self._stopping:
            if len(self._queue) < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def _write_head(self) -> None:
        """Write the first batch of the queue, retrying with backoff until the store takes it."""
        batch = list(itertools.islice(self._queue, self.batch_size))
        delay = RETRY_MIN_DELAY
        failed = 0
        while True:
            try:
                await self._store.insert(batch)
                break
            except Exception as exc:
                failed += 1
                self.failures += 1
                logger.error(
                    "writing %d request log rows failed (attempt %d, %d rows pending); retrying in %.2fs: %r",
                    len(batch),
                    failed,
                    len(self._queue),
                    delay,
                    exc,
                    exc_info=failed == 1,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY)
        if failed:
            logger.warning("request log writes recovered after %d failed attempts", failed)
        for _ in batch:
            self._queue.popleft()
        self._removed += len(batch)
        self.written += len(batch)

"""The SQLite driver: the standard library's ``sqlite3``, driven from one thread of its own.

Transactions begin ``IMMEDIATE``: they take the write lock at once, waiting up to the busy timeout,
so two processes never both read and then race to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar, cast

from ...errors import StoreConflict, StoreError
from .session import Dialect, Row, Session, insert_sql

logger = logging.getLogger("tollway.store")

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5_000
# Rows per multi-row INSERT: a batch is cut into chunks of these sizes, so that a few statements
# (each prepared once, then cached by sqlite3) cover any batch.
SQLITE_INSERT_CHUNKS = (256, 64, 16, 4, 1)

# The sqlite3 module binds int, float, str and bytes directly, but sends every other value (None,
# bool) through its adapter lookup, which fails by raising and clearing a formatted AttributeError:
# about 4,000 instructions per value (callgrind), several per log row. Registered adapters are found
# at once. None binds as NULL and a bool as 0/1, exactly as without them. (Process-wide, like every
# sqlite3 adapter; neither changes what any caller stores.)
_answers_none = cast("Callable[[None], None]", {}.get)  # a C call: {}.get(None) is None
sqlite3.register_adapter(type(None), _answers_none)
sqlite3.register_adapter(bool, int)


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def _sqlite_error(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError):
        return StoreConflict(f"sqlite: {exc}")
    return StoreError(f"sqlite: {exc}")


class _SQLiteSession:
    """Statements on the connection's thread. Not locked: the owner holds ``SQLiteDatabase._lock``."""

    dialect: Dialect = "sqlite"

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        return await self._db._call(lambda c: c.execute(sql, params).fetchall())

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        row: Row | None = await self._db._call(lambda c: c.execute(sql, params).fetchone())
        return row

    async def fetch_value(self, sql: str, *params: Any) -> Any:
        row = await self.fetch_one(sql, *params)
        return None if row is None else next(iter(row.values()))

    async def execute(self, sql: str, *params: Any) -> int:
        count: int = await self._db._call(lambda c: c.execute(sql, params).rowcount)
        return count

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._db._call(lambda c: c.executemany(sql, rows))


class SQLiteDatabase:
    """One connection, used only from one worker thread; an asyncio lock gives each statement or
    transaction the connection to itself. WAL mode: readers in other processes never block the
    writer (``synchronous=NORMAL``: a power cut may lose the last commits, never corrupt)."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._session = _SQLiteSession(self)
        self._max_variables = 999  # the connection tells the real limit

    @classmethod
    async def open(cls, path: Path) -> SQLiteDatabase:
        db = cls(path)
        try:
            await db._call(lambda _: None, connect=True)
            await db._ensure_wal()
        except BaseException:
            await db.close()
            raise
        return db

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the sqlite3 module opens no transactions itself; we BEGIN explicitly.
        conn = sqlite3.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = _dict_row
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._max_variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        return conn

    async def _ensure_wal(self) -> None:
        # Switching a new file to WAL fails at once, without the busy handler, while another process
        # holds a lock (usually because it is switching it too; the mode is stored in the file).
        delay = 0.01
        while True:
            try:
                mode = await self.fetch_value("PRAGMA journal_mode=WAL")
            except StoreError:
                if delay > 2.0:
                    raise
            else:
                if mode == "wal":
                    return
                if delay > 2.0:
                    logger.warning(
                        "SQLite log store is in journal mode %r, not WAL: writers may block readers", mode
                    )
                    return
            await asyncio.sleep(delay)
            delay *= 2

    def _run(self, fn: Callable[[sqlite3.Connection], T], connect: bool) -> T:
        if self._conn is None:
            if not connect:
                raise StoreError("sqlite: the database is closed")
            self._conn = self._connect()
        return fn(self._conn)

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, connect: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run, fn, connect)
        try:
            # shielded: a cancelled caller must not leave the connection's thread mid-statement
            # while the lock passes to someone else
            return await asyncio.shield(future)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await future
            raise

    # each statement on its own (autocommit), one at a time
    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        async with self._lock:
            return await self._session.fetch(sql, *params)

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        async with self._lock:
            return await self._session.fetch_one(sql, *params)

    async def fetch_value(self, sql: str, *params: Any) -> Any:
        async with self._lock:
            return await self._session.fetch_value(sql, *params)

    async def execute(self, sql: str, *params: Any) -> int:
        async with self._lock:
            return await self._session.execute(sql, *params)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """All rows in one transaction, in one call to the connection's thread."""
        await self._atomically(lambda conn: conn.executemany(sql, rows))

    async def _atomically(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """``work`` inside BEGIN IMMEDIATE … COMMIT (ROLLBACK if it raises), all in one trip to the
        connection's thread."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        async with self._lock:
            await self._call(run)

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Multi-row INSERT statements, not ``executemany``: the sqlite3 module lets go of the
        interpreter lock around every statement it steps, so a row-by-row insert on this thread
        hands the lock back and forth with the event loop once per row (measured: the gateway lost
        throughput to the context switches); one statement per chunk of rows hands it over once,
        and costs less CPU per row too (4.8 vs 6.7 µs, 25 columns, four indexes)."""
        limit = max(1, self._max_variables // max(1, len(columns)))
        plan: list[tuple[str, list[Any]]] = []
        start = 0
        for size in SQLITE_INSERT_CHUNKS:
            if size > limit:
                continue
            sql = insert_sql(table, columns, size)
            while len(rows) - start >= size:
                plan.append((sql, list(chain.from_iterable(rows[start : start + size]))))
                start += size

        def run(conn: sqlite3.Connection) -> None:
            for sql, params in plan:
                conn.execute(sql, params)

        await self._atomically(run)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        async with self._lock:
            await self._call(lambda c: c.execute("BEGIN IMMEDIATE"))
            try:
                yield self._session
            except BaseException:
                with contextlib.suppress(BaseException):
                    await self._call(lambda c: c.execute("ROLLBACK"))
                raise
            await self._call(lambda c: c.execute("COMMIT"))

    async def close(self) -> None:
        def shut(_: sqlite3.Connection | None) -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        async with self._lock:
            await loop.run_in_executor(self._executor, shut, None)
        self._executor.shutdown(wait=False)

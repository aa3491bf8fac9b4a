"""The PostgreSQL driver: a small ``asyncpg`` pool, imported only when a PostgreSQL URL is used.
SQL keeps its ``?`` placeholders everywhere else; this driver turns them into ``$1, $2, …``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ...errors import StoreConflict, StoreError
from .session import Dialect, Row, Session, insert_sql

if TYPE_CHECKING:
    import asyncpg  # type: ignore[import-untyped]

PG_CONNECT_TIMEOUT = 10.0  # seconds; bounds how long a blackholed server stalls the writer
PG_COMMAND_TIMEOUT = 60.0


@functools.lru_cache(maxsize=256)
def pg_sql(sql: str) -> str:
    """``?`` placeholders → ``$1, $2, …`` (not inside quoted literals)."""
    out: list[str] = []
    n = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        elif ch == "?" and not quoted:
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _pg_error(exc: BaseException) -> StoreError:
    import asyncpg

    if isinstance(exc, asyncpg.UniqueViolationError):
        return StoreConflict(f"postgresql: {exc}")
    return StoreError(f"postgresql: {type(exc).__name__}: {exc}")


def _pg_failure(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError))


class _PGSession:
    dialect: Dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        return [dict(r) for r in await self._conn.fetch(pg_sql(sql), *params)]

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        row = await self._conn.fetchrow(pg_sql(sql), *params)
        return None if row is None else dict(row)

    async def fetch_value(self, sql: str, *params: Any) -> Any:
        return await self._conn.fetchval(pg_sql(sql), *params)

    async def execute(self, sql: str, *params: Any) -> int:
        status: str = await self._conn.execute(pg_sql(sql), *params)
        last = status.rsplit(" ", 1)[-1]  # "UPDATE 3", "INSERT 0 1", "CREATE TABLE"
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(pg_sql(sql), rows)


class PostgresDatabase:
    """A small asyncpg pool. A connection broken by a server restart fails its statement (the caller
    retries: the log writer keeps its batch) and the pool replaces it."""

    dialect: Dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str) -> PostgresDatabase:
        import asyncpg

        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=8,
                timeout=PG_CONNECT_TIMEOUT,
                command_timeout=PG_COMMAND_TIMEOUT,
                max_inactive_connection_lifetime=300,
            )
        except Exception as exc:
            if _pg_failure(exc):
                raise _pg_error(exc) from exc
            raise
        return cls(pool)

    async def _with(self, fn: Callable[[_PGSession], Any]) -> Any:
        try:
            async with self._pool.acquire() as conn:
                return await fn(_PGSession(conn))
        except Exception as exc:
            if _pg_failure(exc):
                raise _pg_error(exc) from exc
            raise

    async def fetch(self, sql: str, *params: Any) -> list[Row]:
        rows: list[Row] = await self._with(lambda s: s.fetch(sql, *params))
        return rows

    async def fetch_one(self, sql: str, *params: Any) -> Row | None:
        row: Row | None = await self._with(lambda s: s.fetch_one(sql, *params))
        return row

    async def fetch_value(self, sql: str, *params: Any) -> Any:
        return await self._with(lambda s: s.fetch_value(sql, *params))

    async def execute(self, sql: str, *params: Any) -> int:
        count: int = await self._with(lambda s: s.execute(sql, *params))
        return count

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async def run(session: _PGSession) -> None:
            async with session._conn.transaction():
                await session.execute_many(sql, rows)

        await self._with(run)

    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        await self.execute_many(insert_sql(table, columns), rows)  # asyncpg pipelines the rows

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _PGSession(conn)
        except Exception as exc:
            if _pg_failure(exc):
                raise _pg_error(exc) from exc
            raise

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except (TimeoutError, OSError):
            self._pool.terminate()

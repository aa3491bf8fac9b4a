"""``LogStore``: the request log in SQLite (one process, a file) or PostgreSQL (many processes).

Nothing here runs on the request path: the pipeline hands rows to ``LogWriter``, which calls
``insert`` in batches from a background task; the CLI and admin endpoints call the read methods.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from tollway.store import queries
from tollway.store.migrations import MIGRATIONS, SQLITE_BEGIN_OPTION, Migration, migrate
from tollway.store.queries import SpendRow
from tollway.store.row import LogRow
from tollway.store.tables import requests

logger = logging.getLogger("tollway.store")

SQLITE_BUSY_TIMEOUT_MS = 5_000
_NO_TRANSACTION = "NONE"  # SQLITE_BEGIN_OPTION value: emit no BEGIN (for PRAGMAs that refuse one)

_POSTGRES_SCHEMES = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg"}


def storage_url_to_sqlalchemy(url: str) -> str:
    """Turn a ``[storage] url`` into the async SQLAlchemy URL for it.

    ``sqlite:///relative/path.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
    ``postgresql://user@host:port/db`` or ``postgres://…``. URLs already naming the async driver
    (``sqlite+aiosqlite://``, ``postgresql+asyncpg://``) pass through. Creates the directory of a
    SQLite file.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"storage url {url!r} has no scheme; expected sqlite:///path.db or postgresql://…")
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite:///" + str(_sqlite_path(url, rest))
    if scheme in _POSTGRES_SCHEMES or scheme == "postgresql+asyncpg":
        if not rest:
            raise ValueError(
                f"storage url {url!r} names no database; expected postgresql://user@host:port/db"
            )
        return "postgresql+asyncpg://" + rest
    raise ValueError(
        f"unsupported storage url scheme {scheme!r} in {url!r}; "
        "use sqlite:///path.db (a file) or postgresql://user@host:port/db"
    )


def _sqlite_path(url: str, rest: str) -> Path:
    # rest is "/relative/x.db" or "//abs/x.db": the leading slash separates an (empty) host.
    if not rest.startswith("/") or rest in ("/", "//"):
        raise ValueError(f"storage url {url!r} should look like sqlite:///relative.db or sqlite:////abs.db")
    path_text = rest[1:].split("?", 1)[0]
    if path_text in (":memory:", ""):
        raise ValueError(f"storage url {url!r}: the log store needs a file, not an in-memory database")
    path = Path(path_text).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def create_engine(url: str) -> AsyncEngine:
    """The async engine for a storage URL, with per-connection SQLite settings or a small PG pool."""
    sa_url = storage_url_to_sqlalchemy(url)
    if sa_url.startswith("sqlite"):
        engine = create_async_engine(sa_url)
        _configure_sqlite(engine)
        return engine
    # pre_ping notices connections killed by a PostgreSQL restart before the writer trips on them.
    # Timeouts bound how long a blackholed server can stall the writer (which then retries).
    return create_async_engine(
        sa_url,
        pool_size=4,
        max_overflow=4,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"timeout": 10, "command_timeout": 60},
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that DDL is
        # transactional (see the "begin" listener).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except engine.dialect.loaded_dbapi.OperationalError:
            # Switching a new file to WAL fails at once, without the busy handler, while another
            # connection holds a lock; that one is usually switching it (the mode is stored in the
            # file). ``LogStore.open`` makes sure, retrying without blocking the event loop.
            pass
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
        if mode != _NO_TRANSACTION:
            conn.exec_driver_sql(f"BEGIN {mode}".strip())


async def _ensure_wal(engine: AsyncEngine) -> None:
    delay = 0.01
    while True:
        try:
            async with engine.connect() as conn:
                await conn.execution_options(**{SQLITE_BEGIN_OPTION: _NO_TRANSACTION})
                mode = (await conn.exec_driver_sql("PRAGMA journal_mode=WAL")).scalar()
        except OperationalError:
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


class LogStore:
    """The request log. Open with ``await LogStore.open(url)``; close with ``await store.close()``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @classmethod
    async def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> LogStore:
        """Connect to ``url`` (a storage URL, see ``storage_url_to_sqlalchemy``) and migrate it."""
        engine = create_engine(url)
        try:
            if engine.dialect.name == "sqlite":
                await _ensure_wal(engine)
            async with engine.connect() as conn:
                version = await migrate(conn, migrations)
        except BaseException:
            await engine.dispose()
            raise
        logger.debug("log store %s at schema version %d", engine.url.render_as_string(), version)
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def insert(self, rows: Sequence[LogRow]) -> None:
        """Write ``rows`` in one transaction with one executemany.

        The statement goes to the driver as is, with plain tuples: SQLAlchemy's per-row parameter
        processing cost more CPU than the database's own work (measured with bench/run.py)."""
        if not rows:
            return
        fields = queries.LOG_FIELDS
        params = [tuple(getattr(row, name) for name in fields) for row in rows]
        async with self._engine.begin() as conn:
            await conn.exec_driver_sql(self._insert_sql, params)

    @functools.cached_property
    def _insert_sql(self) -> str:
        fields = queries.LOG_FIELDS
        if self._engine.dialect.paramstyle == "numeric_dollar":
            marks = ", ".join(f"${i}" for i in range(1, len(fields) + 1))
        else:
            marks = ", ".join("?" for _ in fields)
        return f"INSERT INTO {requests.name} ({', '.join(fields)}) VALUES ({marks})"

    async def recent(
        self,
        limit: int = 50,
        *,
        model: str | None = None,
        provider: str | None = None,
        status: str | None = None,
    ) -> list[LogRow]:
        """The newest ``limit`` rows, newest first; ``status`` is "ok" or "error" (see queries.py)."""
        statement = queries.recent(limit, model=model, provider=provider, status=status)
        async with self._engine.connect() as conn:
            result = await conn.execute(statement)
            return [queries.params_to_row(mapping) for mapping in result.mappings()]

    async def spend(
        self,
        *,
        since: float,
        until: float | None = None,
        group_by: Sequence[str] = ("provider", "model"),
    ) -> list[SpendRow]:
        """Totals of rows with ``since <= ts < until`` (unix seconds), one ``SpendRow`` per group.

        ``group_by`` keys: "provider", "model" (the requested model), "upstream_model", "key",
        "tenant", "day" (the UTC date, "YYYY-MM-DD"). An empty ``group_by`` gives one total row.
        Rows come ordered by day when grouped by day, then by cost, highest first.
        """
        keys = queries.check_group_by(group_by)
        statement = queries.spend(self._engine.dialect.name, keys, since=since, until=until)
        async with self._engine.connect() as conn:
            result = await conn.execute(statement)
            return [queries.spend_row(keys, mapping) for mapping in result.mappings()]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(requests))).scalar_one())

    async def close(self) -> None:
        await self._engine.dispose()

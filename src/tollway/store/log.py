"""``LogStore``: the request log in SQLite (one process, a file) or PostgreSQL (many processes).

Nothing here runs on the request path: the pipeline hands rows to ``LogWriter``, which calls
``insert`` in batches from a background task; the CLI and admin endpoints call the read methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from . import queries
from .migrations import MIGRATIONS, Migration, migrate
from .queries import CacheRow, SpendRow
from .row import LogRow
from .sql import Database, Session, StorageURL, connect, parse_storage_url
from .tables import REQUESTS

logger = logging.getLogger("tollway.store")


class LogStore:
    """The request log. Open with ``await LogStore.open(url)``; close with ``await store.close()``."""

    def __init__(self, db: Database, url: StorageURL) -> None:
        self._db = db
        self.url = url

    @classmethod
    async def open(cls, url: str, *, migrations: Sequence[Migration] = MIGRATIONS) -> LogStore:
        """Connect to ``url`` (a storage URL, see ``db.parse_storage_url``) and migrate it."""
        parsed = parse_storage_url(url)
        db = await connect(url)
        try:
            version = await migrate(db, migrations)
        except BaseException:
            await db.close()
            raise
        logger.debug("log store %s at schema version %d", parsed, version)
        return cls(db, parsed)

    @property
    def db(self) -> Database:
        """The database under the log (the key repository and budget seeding share it)."""
        return self._db

    @property
    def dialect(self) -> str:
        return self._db.dialect

    async def insert(self, rows: Sequence[LogRow]) -> None:
        """Write ``rows`` in one transaction (``Database.insert_many``); a row is a tuple of its values
        in ``LOG_FIELDS`` order already."""
        if not rows:
            return
        await self._db.insert_many(REQUESTS, queries.LOG_FIELDS, rows)

    async def recent(
        self,
        limit: int = 50,
        *,
        model: str | None = None,
        provider: str | None = None,
        status: str | None = None,
    ) -> list[LogRow]:
        """The newest ``limit`` rows, newest first; ``status`` is "ok" or "error" (see queries.py)."""
        sql, params = queries.recent(limit, model=model, provider=provider, status=status)
        return [queries.params_to_row(row) for row in await self._db.fetch(sql, *params)]

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
        sql, params = queries.spend(self._db.dialect, keys, since=since, until=until)
        return [queries.spend_row(keys, row) for row in await self._db.fetch(sql, *params)]

    async def cache_summary(self, *, since: float, until: float | None = None) -> list[CacheRow]:
        sql, params = queries.cache_summary(since=since, until=until)
        return [queries.cache_row(row) for row in await self._db.fetch(sql, *params)]

    async def spent_since(self, scope: str, name: str, since: float) -> float:
        """US dollars recorded since ``since`` for one key id (scope "key"), one tenant, or everything."""
        return float(await spent_since(self._db, scope, name, since))

    async def count(self) -> int:
        return int(await self._db.fetch_value(f"SELECT count(*) FROM {REQUESTS}"))

    async def close(self) -> None:
        await self._db.close()


async def spent_since(db: Session, scope: str, name: str, since: float) -> float:
    sql, params = queries.spent_since(scope, name, since)
    return float(await db.fetch_value(sql, *params))

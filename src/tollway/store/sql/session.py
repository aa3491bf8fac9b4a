"""What every driver offers: ``Session`` runs statements with ``?`` placeholders and returns rows as
plain dicts; ``Database`` is a session that also batches inserts, opens transactions and closes.

A ``Session`` is either ``Database`` itself (each statement on its own) or the one that
``Database.transaction()`` yields (everything inside commits or rolls back together). Every driver
failure is raised as ``StoreError`` (``StoreConflict`` for a unique constraint), so callers handle
one error whichever database is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

Dialect = Literal["sqlite", "postgresql"]
Row = dict[str, Any]


class Session(Protocol):
    """Runs SQL with ``?`` placeholders."""

    dialect: Dialect

    async def fetch(self, sql: str, *params: Any) -> list[Row]: ...

    async def fetch_one(self, sql: str, *params: Any) -> Row | None: ...

    async def fetch_value(self, sql: str, *params: Any) -> Any:
        """The first column of the first row (None when there is no row)."""

    async def execute(self, sql: str, *params: Any) -> int:
        """Run one statement; the number of rows it changed."""

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(Session, Protocol):
    async def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows (values in ``columns`` order) in one transaction, the fastest way the database has."""

    def transaction(self) -> Any:
        """``async with db.transaction() as tx:`` — a ``Session`` whose statements commit together."""

    async def close(self) -> None: ...


def insert_sql(table: str, columns: Sequence[str], rows: int = 1) -> str:
    """``INSERT INTO table (columns) VALUES (?, …)``, with ``rows`` groups of placeholders."""
    one = "(" + ", ".join("?" for _ in columns) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"

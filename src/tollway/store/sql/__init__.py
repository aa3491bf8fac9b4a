"""The database under the request log, the keys and the tenants: one small async interface
(``session``) over SQLite (``sqlite``) and PostgreSQL (``postgres``), chosen by a storage URL
(``url``).

SQL is written once, with ``?`` placeholders; rows come back as plain dicts; every driver failure is
a ``StoreError``.
"""

from __future__ import annotations

from pathlib import Path

from .postgres import PostgresDatabase
from .session import Database, Dialect, Row, Session, insert_sql
from .sqlite import SQLiteDatabase
from .url import StorageURL, parse_storage_url

__all__ = [
    "Database",
    "Dialect",
    "PostgresDatabase",
    "Row",
    "SQLiteDatabase",
    "Session",
    "StorageURL",
    "connect",
    "insert_sql",
    "parse_storage_url",
]


async def connect(url: str) -> Database:
    """Open the database a storage URL names."""
    parsed = parse_storage_url(url)
    if parsed.dialect == "sqlite":
        return await SQLiteDatabase.open(Path(parsed.target))
    return await PostgresDatabase.open(parsed.target)

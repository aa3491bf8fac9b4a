"""The request log: one ``LogRow`` per call, batched by ``LogWriter`` into a ``LogStore``
(SQLite file by default, PostgreSQL to share one log between gateway processes), over the small
database layer in ``sql`` that the key repository shares."""

from tollway.store.log import LogStore
from tollway.store.migrations import MIGRATIONS, Migration, migrate, schema_version
from tollway.store.queries import GROUP_KEYS, SpendRow
from tollway.store.row import LogRow
from tollway.store.sql import Database, Session, StorageURL, connect, parse_storage_url
from tollway.store.writer import LogWriter, RowSink

__all__ = [
    "GROUP_KEYS",
    "MIGRATIONS",
    "Database",
    "LogRow",
    "LogStore",
    "LogWriter",
    "Migration",
    "RowSink",
    "Session",
    "SpendRow",
    "StorageURL",
    "connect",
    "migrate",
    "parse_storage_url",
    "schema_version",
]

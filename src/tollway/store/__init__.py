"""The request log: one ``LogRow`` per call, batched by ``LogWriter`` into a ``LogStore``
(SQLite file by default, PostgreSQL to share one log between gateway processes)."""

from tollway.store.database import LogStore, create_engine, storage_url_to_sqlalchemy
from tollway.store.migrations import MIGRATIONS, Migration, migrate, schema_version
from tollway.store.queries import GROUP_KEYS, SpendRow
from tollway.store.row import LogRow
from tollway.store.writer import LogWriter, RowSink

__all__ = [
    "GROUP_KEYS",
    "MIGRATIONS",
    "LogRow",
    "LogStore",
    "LogWriter",
    "Migration",
    "RowSink",
    "SpendRow",
    "create_engine",
    "migrate",
    "schema_version",
    "storage_url_to_sqlalchemy",
]

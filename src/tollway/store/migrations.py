"""Schema migrations: an ordered list of frozen steps, and ``migrate`` to apply the missing ones.

A migration is a plain function of a *sync* SQLAlchemy ``Connection`` (``migrate`` runs it through
``AsyncConnection.run_sync``), so it can use ``Table.create``, ``Index.create``, ``inspect`` and raw
DDL alike. Each step builds its own table objects instead of importing ``tables.py``: a step must
create the same thing forever, while ``tables.py`` follows the newest schema.

To change the schema: append a ``Migration`` with the next version number to ``MIGRATIONS`` and
update ``tables.py`` to match. Never edit a migration that has shipped.

``migrate`` applies every missing step and records it in ``schema_migrations`` inside one
transaction, so a database is always at some whole version. Several gateway processes may start at
once: on PostgreSQL they queue on a transaction-scoped advisory lock, on SQLite on the write lock
(``BEGIN IMMEDIATE``, waiting up to the busy timeout); the later ones find nothing left to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from tollway.store.tables import schema_migrations

# Any constant bigint works; it only has to be the same in every tollway process.
PG_MIGRATION_LOCK = 7_361_120_455_002_771

# Read by the SQLite "begin" listener in database.py: take the write lock when the transaction
# starts, so two migrators never both read version N and then race to write.
SQLITE_BEGIN_OPTION = "tollway_sqlite_begin"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _v1_requests(conn: Connection) -> None:
    metadata = MetaData()
    big_id = BigInteger().with_variant(Integer(), "sqlite")
    Table(
        "requests",
        metadata,
        Column("id", big_id, primary_key=True, autoincrement=True),
        Column("ts", Double, nullable=False),
        Column("request_id", String, nullable=False),
        Column("key_id", String, nullable=False),
        Column("requested_model", String, nullable=False),
        Column("provider", String, nullable=False),
        Column("upstream_model", String, nullable=False),
        Column("status", Integer, nullable=False),
        Column("error_type", String, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("latency_ms", Double, nullable=False),
        Column("ttft_ms", Double, nullable=True),
        Column("input_tokens", Integer, nullable=False),
        Column("cached_tokens", Integer, nullable=False),
        Column("cache_write_tokens", Integer, nullable=False),
        Column("output_tokens", Integer, nullable=False),
        Column("reasoning_tokens", Integer, nullable=False),
        Column("cost", Double, nullable=True),
        Column("usage_estimated", Boolean, nullable=False),
        Column("stream", Boolean, nullable=False),
        Column("cache_status", String, nullable=False),
        Column("endpoint", String, nullable=False),
        Column("tenant", String, nullable=False),
        Column("request_body", Text, nullable=True),
        Column("response_body", Text, nullable=True),
        Index("ix_requests_ts", "ts"),
        Index("ix_requests_requested_model_ts", "requested_model", "ts"),
        Index("ix_requests_key_id_ts", "key_id", "ts"),
    )
    metadata.create_all(conn, checkfirst=False)


def _v2_limit_columns() -> list[Column[object]]:
    return [
        Column("rpm", Integer, nullable=True),
        Column("tpm", Integer, nullable=True),
        Column("concurrency", Integer, nullable=True),
        Column("budget", Double, nullable=True),
        Column("budget_period", String, nullable=True),
        Column("budget_action", String, nullable=True),
    ]


def _v2_keys(conn: Connection) -> None:
    metadata = MetaData()
    live = text("status <> 'deleted'")
    Table(
        "api_keys",
        metadata,
        Column("id", String, primary_key=True),
        Column("name", String, nullable=False),
        Column("tenant", String, nullable=False),
        Column("key_hash", String, nullable=False),
        Column("hint", String, nullable=False),
        Column("models", Text, nullable=False),
        *_v2_limit_columns(),
        Column("expires_at", Double, nullable=True),
        Column("status", String, nullable=False),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
        Index("ux_api_keys_key_hash", "key_hash", unique=True),
        Index("ix_api_keys_updated_at", "updated_at"),
        Index("ux_api_keys_live_name", "name", unique=True, sqlite_where=live, postgresql_where=live),
    )
    Table(
        "tenants",
        metadata,
        Column("name", String, primary_key=True),
        *_v2_limit_columns(),
        Column("created_at", Double, nullable=False),
        Column("updated_at", Double, nullable=False),
    )
    metadata.create_all(conn, checkfirst=False)
    requests = Table("requests", MetaData(), Column("tenant", String), Column("ts", Double))
    Index("ix_requests_tenant_ts", requests.c.tenant, requests.c.ts).create(conn)


def _v3_saved_cost(conn: Connection) -> None:
    # what a cache hit or a deduplicated call would have cost (the cost it saved); NULL otherwise
    column_type = Double().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE requests ADD COLUMN saved_cost {column_type}"))


def _v4_key_cache(conn: Connection) -> None:
    # whether the response cache serves a key's calls; NULL (every key created before) means on
    column_type = Boolean().compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE api_keys ADD COLUMN cache {column_type}"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create requests", _v1_requests),
    Migration(2, "create api_keys and tenants", _v2_keys),
    Migration(3, "add requests.saved_cost", _v3_saved_cost),
    Migration(4, "add api_keys.cache", _v4_key_cache),
)


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")


async def migrate(conn: AsyncConnection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of ``migrations``; return the resulting version.

    ``conn`` must not be inside a transaction: this opens and commits its own.
    """
    _check_order(migrations)
    if conn.dialect.name == "sqlite":
        await conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    async with conn.begin():
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        await conn.run_sync(schema_migrations.create, checkfirst=True)
        current = int((await conn.execute(select(func.max(schema_migrations.c.version)))).scalar() or 0)
        if current > len(migrations):
            raise RuntimeError(
                f"the log database is at schema version {current}, newer than this tollway knows "
                f"({len(migrations)}); upgrade tollway"
            )
        for migration in migrations[current:]:
            await conn.run_sync(migration.apply)
            await conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=time.time()
                )
            )
        return max(current, len(migrations))


async def schema_version(conn: AsyncConnection) -> int:
    """The version recorded in ``schema_migrations`` (0 for an empty database)."""
    has_table = await conn.run_sync(lambda sync: sync.dialect.has_table(sync, "schema_migrations"))
    if not has_table:
        return 0
    return int((await conn.execute(select(func.max(schema_migrations.c.version)))).scalar() or 0)

"""Schema migrations: an ordered list of frozen steps, and ``migrate`` to apply the missing ones.

A migration is an async function of the migrating transaction, usually DDL (``ddl``) with the
column types that differ between the dialects filled in. Each step spells out its own SQL: a step must
create the same thing forever, while ``tables.py`` describes the newest schema. (Versions 1-4
were first written with SQLAlchemy; the statements below create exactly what it created, column
types, constraints and index names included — ``tests/test_store.py`` compares a fresh database
with the schema SQLAlchemy produced, kept in ``tests/data/schema_v4.json``.)

To change the schema: append a ``Migration`` with the next version number to ``MIGRATIONS`` and
update ``tables.py`` to match. Never edit a migration that has shipped.

``migrate`` applies every missing step and records it in ``schema_migrations`` inside one
transaction, so a database is always at some whole version. Several gateway processes may start at
once: on PostgreSQL they queue on a transaction-scoped advisory lock, on SQLite on the write lock
(``BEGIN IMMEDIATE``, waiting up to the busy timeout); the later ones find nothing left to do.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .sql import Database, Dialect, Session

# Any constant bigint works; it only has to be the same in every tollway process.
PG_MIGRATION_LOCK = 7_361_120_455_002_771

# Column types that differ between the dialects. SQLite only auto-increments a column declared
# exactly INTEGER PRIMARY KEY.
_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"double": "DOUBLE", "id": "INTEGER NOT NULL", "bool": "BOOLEAN"},
    "postgresql": {"double": "DOUBLE PRECISION", "id": "BIGSERIAL NOT NULL", "bool": "BOOLEAN"},
}


Apply = Callable[[Session], Awaitable[None]]
"""One step's work, inside the migrating transaction."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Apply


def ddl(*statements: str) -> Apply:
    """A step that runs DDL statements; {double}, {id} and {bool} stand for the dialect's types."""

    async def apply(tx: Session) -> None:
        for statement in statements:
            await tx.execute(statement.format(**_TYPES[tx.dialect]))

    return apply


_SCHEMA_MIGRATIONS = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    applied_at {double} NOT NULL,
    PRIMARY KEY (version)
)"""

_V1 = (
    """CREATE TABLE requests (
    id {id},
    ts {double} NOT NULL,
    request_id VARCHAR NOT NULL,
    key_id VARCHAR NOT NULL,
    requested_model VARCHAR NOT NULL,
    provider VARCHAR NOT NULL,
    upstream_model VARCHAR NOT NULL,
    status INTEGER NOT NULL,
    error_type VARCHAR NOT NULL,
    attempts INTEGER NOT NULL,
    latency_ms {double} NOT NULL,
    ttft_ms {double},
    input_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost {double},
    usage_estimated {bool} NOT NULL,
    stream {bool} NOT NULL,
    cache_status VARCHAR NOT NULL,
    endpoint VARCHAR NOT NULL,
    tenant VARCHAR NOT NULL,
    request_body TEXT,
    response_body TEXT,
    PRIMARY KEY (id)
)""",
    "CREATE INDEX ix_requests_ts ON requests (ts)",
    "CREATE INDEX ix_requests_requested_model_ts ON requests (requested_model, ts)",
    "CREATE INDEX ix_requests_key_id_ts ON requests (key_id, ts)",
)

_V2_LIMITS = """rpm INTEGER,
    tpm INTEGER,
    concurrency INTEGER,
    budget {double},
    budget_period VARCHAR,
    budget_action VARCHAR"""

_V2 = (
    f"""CREATE TABLE api_keys (
    id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    tenant VARCHAR NOT NULL,
    key_hash VARCHAR NOT NULL,
    hint VARCHAR NOT NULL,
    models TEXT NOT NULL,
    {_V2_LIMITS},
    expires_at {{double}},
    status VARCHAR NOT NULL,
    created_at {{double}} NOT NULL,
    updated_at {{double}} NOT NULL,
    PRIMARY KEY (id)
)""",
    "CREATE UNIQUE INDEX ux_api_keys_key_hash ON api_keys (key_hash)",
    "CREATE INDEX ix_api_keys_updated_at ON api_keys (updated_at)",
    "CREATE UNIQUE INDEX ux_api_keys_live_name ON api_keys (name) WHERE status <> 'deleted'",
    f"""CREATE TABLE tenants (
    name VARCHAR NOT NULL,
    {_V2_LIMITS},
    created_at {{double}} NOT NULL,
    updated_at {{double}} NOT NULL,
    PRIMARY KEY (name)
)""",
    "CREATE INDEX ix_requests_tenant_ts ON requests (tenant, ts)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create requests", ddl(*_V1)),
    Migration(2, "create api_keys and tenants", ddl(*_V2)),
    # what a cache hit or a deduplicated call would have cost (the cost it saved); NULL otherwise
    Migration(3, "add requests.saved_cost", ddl("ALTER TABLE requests ADD COLUMN saved_cost {double}")),
    # whether the response cache serves a key's calls; NULL (every key created before) means on
    Migration(4, "add api_keys.cache", ddl("ALTER TABLE api_keys ADD COLUMN cache {bool}")),
    # a call the gateway made on behalf of another (internal.py): that call's request id; NULL otherwise
    Migration(
        5,
        "add requests.parent_request_id",
        ddl("ALTER TABLE requests ADD COLUMN parent_request_id VARCHAR"),
    ),
)


def _check_order(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1, 2, 3, ... in order; got {versions}")


async def _current(tx: Session) -> int:
    return int(await tx.fetch_value("SELECT max(version) FROM schema_migrations") or 0)


async def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of ``migrations``; return the resulting version."""
    _check_order(migrations)
    async with db.transaction() as tx:
        if db.dialect == "postgresql":
            await tx.execute("SELECT pg_advisory_xact_lock(?)", PG_MIGRATION_LOCK)
        await tx.execute(_SCHEMA_MIGRATIONS.format(**_TYPES[db.dialect]))
        current = await _current(tx)
        if current > len(migrations):
            raise RuntimeError(
                f"the log database is at schema version {current}, newer than this tollway knows "
                f"({len(migrations)}); upgrade tollway"
            )
        for migration in migrations[current:]:
            await migration.apply(tx)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                migration.version,
                migration.name,
                time.time(),
            )
        return max(current, len(migrations))


async def schema_version(db: Database) -> int:
    """The version recorded in ``schema_migrations`` (0 for an empty database)."""
    if db.dialect == "sqlite":
        exists = await db.fetch_value(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
    else:
        exists = await db.fetch_value("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await db.fetch_value("SELECT max(version) FROM schema_migrations") or 0)

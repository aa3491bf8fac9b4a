"""The log store's schema as it is *now*, in SQLAlchemy Core: what queries read and write.

``migrations.py`` builds this schema step by step and freezes each step; when a column is added
here, a migration that adds it must be appended there too (``test_store`` checks that a freshly
migrated database matches these definitions).

Times are unix seconds as double precision (``ts``), the same float the pipeline records, so both
dialects store and compare them identically; money is US dollars as double precision.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")

requests = Table(
    "requests",
    metadata,
    Column("id", _BIG_ID, primary_key=True, autoincrement=True),
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
    Column("saved_cost", Double, nullable=True),  # cache hits and deduplicated calls: the cost saved
    # (model, ts) and (key, ts) serve both "rows of this model" and "rows of this model since t".
    Index("ix_requests_ts", "ts"),
    Index("ix_requests_requested_model_ts", "requested_model", "ts"),
    Index("ix_requests_key_id_ts", "key_id", "ts"),
    Index("ix_requests_tenant_ts", "tenant", "ts"),  # seeds tenant budgets (migration 2)
)

# Virtual keys (migration 2). Only the SHA-256 of a key is stored. Deleting a key marks it
# "deleted" rather than removing the row, so the log's key ids keep their names and the other
# gateway processes' incremental refresh (``updated_at``) sees the deletion.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("tenant", String, nullable=False),
    Column("key_hash", String, nullable=False),
    Column("hint", String, nullable=False),
    Column("models", Text, nullable=False),  # JSON array of allowed model patterns; [] = any
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("budget", Double, nullable=True),  # US dollars per budget_period
    Column("budget_period", String, nullable=True),
    Column("budget_action", String, nullable=True),
    Column("expires_at", Double, nullable=True),
    Column("status", String, nullable=False),  # active, disabled, deleted
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("cache", Boolean, nullable=True),  # the response cache serves this key; NULL = true (migration 4)
    Index("ux_api_keys_key_hash", "key_hash", unique=True),
    Index("ix_api_keys_updated_at", "updated_at"),
    # a name is unique among keys not deleted
    Index(
        "ux_api_keys_live_name",
        "name",
        unique=True,
        sqlite_where=text("status <> 'deleted'"),
        postgresql_where=text("status <> 'deleted'"),
    ),
)

# Tenants group keys and carry limits of their own (migration 2).
tenants = Table(
    "tenants",
    metadata,
    Column("name", String, primary_key=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("concurrency", Integer, nullable=True),
    Column("budget", Double, nullable=True),
    Column("budget_period", String, nullable=True),
    Column("budget_action", String, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String, nullable=False),
    Column("applied_at", Double, nullable=False),  # unix seconds
)

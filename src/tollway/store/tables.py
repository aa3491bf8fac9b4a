"""The schema as it is *now*: each table's columns, in order, for the queries that read and write
them. ``migrations.py`` builds this schema step by step; when a column is added there, it is added
here too (``test_store`` checks that a freshly migrated database has exactly these columns).

Times are unix seconds as double precision (``ts``), the same float the pipeline records, so both
dialects store and compare them identically; money is US dollars as double precision.
"""

from __future__ import annotations

REQUESTS = "requests"
REQUESTS_COLUMNS: tuple[str, ...] = (
    "id",
    "ts",
    "request_id",
    "key_id",
    "requested_model",
    "provider",
    "upstream_model",
    "status",
    "error_type",
    "attempts",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost",
    "usage_estimated",
    "stream",
    "cache_status",
    "endpoint",
    "tenant",
    "request_body",
    "response_body",
    "saved_cost",  # cache hits and deduplicated calls: the cost saved (migration 3)
    "parent_request_id",  # calls made on behalf of another (internal.py): its request id (migration 5)
)

# Virtual keys (migration 2). Only the SHA-256 of a key is stored. Deleting a key marks it
# "deleted" rather than removing the row, so the log's key ids keep their names and the other
# gateway processes' incremental refresh (``updated_at``) sees the deletion. A name is unique
# among keys not deleted.
API_KEYS = "api_keys"
API_KEYS_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "tenant",
    "key_hash",
    "hint",
    "models",  # JSON array of allowed model patterns; [] = any
    "rpm",
    "tpm",
    "concurrency",
    "budget",  # US dollars per budget_period
    "budget_period",
    "budget_action",
    "expires_at",
    "status",  # active, disabled, deleted
    "created_at",
    "updated_at",
    "cache",  # the response cache serves this key; NULL = true (migration 4)
)

# Tenants group keys and carry limits of their own (migration 2).
TENANTS = "tenants"
TENANTS_COLUMNS: tuple[str, ...] = (
    "name",
    "rpm",
    "tpm",
    "concurrency",
    "budget",
    "budget_period",
    "budget_action",
    "created_at",
    "updated_at",
)

SCHEMA_MIGRATIONS = "schema_migrations"

COLUMNS: dict[str, tuple[str, ...]] = {
    REQUESTS: REQUESTS_COLUMNS,
    API_KEYS: API_KEYS_COLUMNS,
    TENANTS: TENANTS_COLUMNS,
    SCHEMA_MIGRATIONS: ("version", "name", "applied_at"),
}

"""Read queries over the request log, as SQL with ``?`` placeholders, and the rows they return.

Outcome: a row is "ok" when its HTTP ``status`` is 2xx or 3xx, and an error otherwise (including
status 0, a call that never produced a response). ``recent(status=...)`` and ``SpendRow.errors``
share this one definition.

Days: ``spend`` groups by ``day`` as the UTC calendar date of ``ts`` ("YYYY-MM-DD"), computed by the
database, so SQLite and PostgreSQL agree and no time-zone database is needed on the server.

Only fixed column names and fixed SQL fragments are ever spliced into a statement; every value the
caller gives travels as a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .row import LogRow
from .sql import Dialect
from .tables import REQUESTS

LOG_FIELDS: tuple[str, ...] = LogRow._fields

STATUS_FILTERS = ("ok", "error")
GROUP_KEYS = ("provider", "model", "upstream_model", "key", "tenant", "day")

_GROUP_COLUMNS: dict[str, str] = {
    "provider": "provider",
    "model": "requested_model",
    "upstream_model": "upstream_model",
    "key": "key_id",
    "tenant": "tenant",
}

IS_ERROR = "(status NOT BETWEEN 200 AND 399)"

_BOOL_FIELDS = ("usage_estimated", "stream")


@dataclass(slots=True)
class SpendRow:
    """Totals for one group; ``group`` maps each group_by key to its value (all strings)."""

    group: dict[str, str]
    requests: int
    errors: int
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost: float  # US dollars over priced rows; rows without a known price count as 0
    unpriced: int  # rows whose cost is unknown (NULL)
    saved: float = 0.0  # US dollars that cache hits and deduplicated calls did not spend


def params_to_row(mapping: Mapping[str, Any]) -> LogRow:
    values = {name: mapping[name] for name in LOG_FIELDS}
    for name in _BOOL_FIELDS:  # SQLite hands booleans back as 0/1
        values[name] = bool(values[name])
    return LogRow(**values)


def recent(
    limit: int,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | None = None,
) -> tuple[str, list[Any]]:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    conditions: list[str] = []
    params: list[Any] = []
    if model is not None:
        conditions.append("requested_model = ?")
        params.append(model)
    if provider is not None:
        conditions.append("provider = ?")
        params.append(provider)
    if status is not None:
        if status not in STATUS_FILTERS:
            raise ValueError(f"status filter must be one of {STATUS_FILTERS}, got {status!r}")
        conditions.append(IS_ERROR if status == "error" else f"NOT {IS_ERROR}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    params.append(limit)
    return (
        f"SELECT {', '.join(LOG_FIELDS)} FROM {REQUESTS}{where} ORDER BY ts DESC, id DESC LIMIT ?",
        params,
    )


def check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """Validate group keys; drop repeats, keep order."""
    unknown = [key for key in group_by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group spend by {unknown}; choose from {GROUP_KEYS}")
    return tuple(dict.fromkeys(group_by))


def utc_day(dialect: Dialect) -> str:
    """The UTC date of ``ts`` as "YYYY-MM-DD". Constants are inlined, not bound, so that the same
    expression in SELECT and GROUP BY is recognised as equal by PostgreSQL."""
    if dialect == "sqlite":
        return "date(ts, 'unixepoch')"
    return "to_char(timezone('UTC', to_timestamp(ts)), 'YYYY-MM-DD')"


def _since_until(since: float, until: float | None) -> tuple[str, list[Any]]:
    if until is None:
        return "ts >= ?", [float(since)]
    return "ts >= ? AND ts < ?", [float(since), float(until)]


def spend(
    dialect: Dialect, keys: Sequence[str], *, since: float, until: float | None
) -> tuple[str, list[Any]]:
    """Totals per group. Ordered by day (oldest first) when grouped by day, then by cost, highest first."""
    group_exprs = [utc_day(dialect) if key == "day" else _GROUP_COLUMNS[key] for key in keys]
    tokens = ("input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
    select = [
        *(f"{expr} AS g_{key}" for key, expr in zip(keys, group_exprs, strict=True)),
        "count(*) AS requests",
        f"coalesce(sum(CASE WHEN {IS_ERROR} THEN 1 ELSE 0 END), 0) AS errors",
        *(f"coalesce(sum({name}), 0) AS {name}" for name in tokens),
        "coalesce(sum(cost), 0.0) AS cost",
        "count(*) - count(cost) AS unpriced",
        "coalesce(sum(saved_cost), 0.0) AS saved",
    ]
    where, params = _since_until(since, until)
    sql = f"SELECT {', '.join(select)} FROM {REQUESTS} WHERE {where}"
    if group_exprs:
        sql += f" GROUP BY {', '.join(group_exprs)}"
    day_first = [expr for key, expr in zip(keys, group_exprs, strict=True) if key == "day"]
    others = [expr for key, expr in zip(keys, group_exprs, strict=True) if key != "day"]
    sql += f" ORDER BY {', '.join([*day_first, 'cost DESC', *others])}"
    return sql, params


def spend_row(keys: Sequence[str], mapping: Mapping[str, Any]) -> SpendRow:
    return SpendRow(
        group={key: str(mapping[f"g_{key}"]) for key in keys},
        requests=int(mapping["requests"]),
        errors=int(mapping["errors"]),
        input_tokens=int(mapping["input_tokens"]),
        cached_tokens=int(mapping["cached_tokens"]),
        cache_write_tokens=int(mapping["cache_write_tokens"]),
        output_tokens=int(mapping["output_tokens"]),
        reasoning_tokens=int(mapping["reasoning_tokens"]),
        cost=float(mapping["cost"]),
        unpriced=int(mapping["unpriced"]),
        saved=float(mapping["saved"]),
    )


@dataclass(slots=True)
class CacheRow:
    """Calls of one cache status ("hit", "semantic", "dedup", "miss", "bypass"; "" when no cache ran)."""

    status: str
    requests: int
    cost: float
    saved: float


def cache_summary(*, since: float, until: float | None = None) -> tuple[str, list[Any]]:
    """Requests, cost and money saved per cache status, chat and embeddings calls only."""
    where, params = _since_until(since, until)
    sql = (
        "SELECT cache_status, count(*) AS requests, coalesce(sum(cost), 0.0) AS cost, "
        f"coalesce(sum(saved_cost), 0.0) AS saved FROM {REQUESTS} "
        f"WHERE {where} AND endpoint IN ('chat', 'embeddings') "
        "GROUP BY cache_status ORDER BY cache_status"
    )
    return sql, params


def cache_row(mapping: Mapping[str, Any]) -> CacheRow:
    return CacheRow(
        str(mapping["cache_status"]),
        int(mapping["requests"]),
        float(mapping["cost"]),
        float(mapping["saved"]),
    )


def spent_since(scope: str, name: str, since: float) -> tuple[str, list[Any]]:
    """US dollars recorded since ``since`` for one key id (scope "key"), one tenant, or everything."""
    sql = f"SELECT coalesce(sum(cost), 0.0) FROM {REQUESTS} WHERE ts >= ?"
    params: list[Any] = [float(since)]
    if scope == "key":
        sql += " AND key_id = ?"
        params.append(name)
    elif scope == "tenant":
        sql += " AND tenant = ?"
        params.append(name)
    return sql, params

"""Read queries over the request log, as SQLAlchemy Core statements, and the rows they return.

Outcome: a row is "ok" when its HTTP ``status`` is 2xx or 3xx, and an error otherwise (including
status 0, a call that never produced a response). ``recent(status=...)`` and ``SpendRow.errors``
share this one definition.

Days: ``spend`` groups by ``day`` as the UTC calendar date of ``ts`` ("YYYY-MM-DD"), computed by the
database, so SQLite and PostgreSQL agree and no time-zone database is needed on the server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, literal_column, not_, select

from tollway.store.row import LogRow
from tollway.store.tables import requests

LOG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LogRow))

STATUS_FILTERS = ("ok", "error")
GROUP_KEYS = ("provider", "model", "upstream_model", "key", "tenant", "day")

_GROUP_COLUMNS: dict[str, ColumnElement[Any]] = {
    "provider": requests.c.provider,
    "model": requests.c.requested_model,
    "upstream_model": requests.c.upstream_model,
    "key": requests.c.key_id,
    "tenant": requests.c.tenant,
}


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


def is_error() -> ColumnElement[bool]:
    return not_(requests.c.status.between(200, 399))


def row_to_params(row: LogRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in LOG_FIELDS}


def params_to_row(mapping: Mapping[str, Any]) -> LogRow:
    return LogRow(**{name: mapping[name] for name in LOG_FIELDS})


def recent(
    limit: int,
    *,
    model: str | None = None,
    provider: str | None = None,
    status: str | None = None,
) -> Select[Any]:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    statement = select(*(requests.c[name] for name in LOG_FIELDS))
    if model is not None:
        statement = statement.where(requests.c.requested_model == model)
    if provider is not None:
        statement = statement.where(requests.c.provider == provider)
    if status is not None:
        if status not in STATUS_FILTERS:
            raise ValueError(f"status filter must be one of {STATUS_FILTERS}, got {status!r}")
        statement = statement.where(is_error() if status == "error" else not_(is_error()))
    return statement.order_by(requests.c.ts.desc(), requests.c.id.desc()).limit(limit)


def check_group_by(group_by: Sequence[str]) -> tuple[str, ...]:
    """Validate group keys; drop repeats, keep order."""
    unknown = [key for key in group_by if key not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group spend by {unknown}; choose from {GROUP_KEYS}")
    return tuple(dict.fromkeys(group_by))


def utc_day(dialect: str) -> ColumnElement[str]:
    """The UTC date of ``ts`` as "YYYY-MM-DD". Constants are inlined, not bound, so that the same
    expression in SELECT and GROUP BY is recognised as equal by PostgreSQL."""
    if dialect == "sqlite":
        return func.date(requests.c.ts, literal_column("'unixepoch'"))
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), func.to_timestamp(requests.c.ts))
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    raise ValueError(f"day grouping is not implemented for {dialect}")


def spend(dialect: str, keys: Sequence[str], *, since: float, until: float | None) -> Select[Any]:
    """Totals per group. Ordered by day (oldest first) when grouped by day, then by cost, highest first."""
    group_columns = [
        (utc_day(dialect) if key == "day" else _GROUP_COLUMNS[key]).label(f"g_{key}") for key in keys
    ]
    cost = func.coalesce(func.sum(requests.c.cost), 0.0).label("cost")
    statement = select(
        *group_columns,
        func.count().label("requests"),
        func.coalesce(func.sum(case((is_error(), 1), else_=0)), 0).label("errors"),
        *(
            func.coalesce(func.sum(requests.c[name]), 0).label(name)
            for name in (
                "input_tokens",
                "cached_tokens",
                "cache_write_tokens",
                "output_tokens",
                "reasoning_tokens",
            )
        ),
        cost,
        (func.count() - func.count(requests.c.cost)).label("unpriced"),
        func.coalesce(func.sum(requests.c.saved_cost), 0.0).label("saved"),
    )
    conditions = [requests.c.ts >= since]
    if until is not None:
        conditions.append(requests.c.ts < until)
    statement = statement.where(and_(*conditions))
    if group_columns:
        statement = statement.group_by(*group_columns)
    day_first = [column for key, column in zip(keys, group_columns, strict=True) if key == "day"]
    others = [column for key, column in zip(keys, group_columns, strict=True) if key != "day"]
    return statement.order_by(*day_first, cost.desc(), *others)


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


def cache_summary(*, since: float, until: float | None = None) -> Select[Any]:
    """Requests, cost and money saved per cache status, chat and embeddings calls only."""
    conditions = [requests.c.ts >= since, requests.c.endpoint.in_(("chat", "embeddings"))]
    if until is not None:
        conditions.append(requests.c.ts < until)
    return (
        select(
            requests.c.cache_status,
            func.count().label("requests"),
            func.coalesce(func.sum(requests.c.cost), 0.0).label("cost"),
            func.coalesce(func.sum(requests.c.saved_cost), 0.0).label("saved"),
        )
        .where(and_(*conditions))
        .group_by(requests.c.cache_status)
        .order_by(requests.c.cache_status)
    )


def cache_row(mapping: Mapping[str, Any]) -> CacheRow:
    return CacheRow(str(mapping["cache_status"]), int(mapping["requests"]), float(mapping["cost"]),
                    float(mapping["saved"]))

"""LogStore against a SQLite file and the real PostgreSQL server, side by side."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Connection, inspect, text

from tollway.store import (
    MIGRATIONS,
    LogRow,
    LogStore,
    Migration,
    SpendRow,
    create_engine,
    migrate,
    schema_version,
    storage_url_to_sqlalchemy,
)
from tollway.store.tables import requests

PG_ADMIN_DSN = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def make_row(**overrides: object) -> LogRow:
    row = LogRow(
        ts=1_700_000_000.0,
        request_id="req_" + uuid.uuid4().hex,
        key_id="key-a",
        requested_model="gpt-4o-mini",
        provider="openai",
        upstream_model="gpt-4o-mini-2024-07-18",
        status=200,
        error_type="",
        attempts=1,
        latency_ms=120.5,
        ttft_ms=40.25,
        input_tokens=100,
        cached_tokens=20,
        cache_write_tokens=0,
        output_tokens=50,
        reasoning_tokens=5,
        cost=0.000123,
        usage_estimated=False,
        stream=True,
        cache_status="miss",
    )
    return replace(row, **overrides)  # type: ignore[arg-type]


# --- backends ---------------------------------------------------------------------------------


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"tollway_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _reset_pg(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path, pg_database: str) -> str:
    """An empty log database: a SQLite file, or the session's PostgreSQL database wiped clean."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/logs/tollway.db"
    await _reset_pg(pg_database)
    return pg_database


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[LogStore]:
    opened = await LogStore.open(store_url)
    yield opened
    await opened.close()


# --- URLs -------------------------------------------------------------------------------------


def test_storage_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage_url_to_sqlalchemy("sqlite:///data/log.db") == "sqlite+aiosqlite:///data/log.db"
    assert (tmp_path / "data").is_dir()
    absolute = tmp_path / "abs" / "deep" / "log.db"
    assert storage_url_to_sqlalchemy(f"sqlite:///{absolute}") == f"sqlite+aiosqlite:///{absolute}"
    assert absolute.parent.is_dir()
    assert (
        storage_url_to_sqlalchemy("postgresql://u@db.example:5433/logs")
        == "postgresql+asyncpg://u@db.example:5433/logs"
    )
    assert storage_url_to_sqlalchemy("postgres://u:p@h/logs") == "postgresql+asyncpg://u:p@h/logs"
    for bad in ("mysql://h/db", "log.db", "sqlite://", "sqlite:///:memory:", "redis://localhost"):
        with pytest.raises(ValueError, match="storage url"):
            storage_url_to_sqlalchemy(bad)


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
    await engine.dispose()


# --- writing and reading ----------------------------------------------------------------------


async def test_insert_and_recent_newest_first(store: LogStore) -> None:
    rows = [make_row(ts=1_700_000_000.0 + i, request_id=f"r{i}") for i in range(5)]
    await store.insert(rows)
    await store.insert([])
    assert await store.count() == 5
    assert [r.request_id for r in await store.recent()] == ["r4", "r3", "r2", "r1", "r0"]
    assert [r.request_id for r in await store.recent(2)] == ["r4", "r3"]


async def test_every_field_round_trips(store: LogStore) -> None:
    full = make_row(
        tenant="acme",
        endpoint="embeddings",
        request_body='{"model": "x"}',
        response_body="{}",
        usage_estimated=True,
        stream=False,
    )
    sparse = make_row(ts=1_700_000_001.0, ttft_ms=None, cost=None, status=502, error_type="upstream_error")
    await store.insert([full, sparse])
    assert await store.recent() == [sparse, full]


async def test_recent_filters(store: LogStore) -> None:
    await store.insert(
        [
            make_row(ts=1.0, request_id="a", requested_model="m1", provider="openai"),
            make_row(ts=2.0, request_id="b", requested_model="m2", provider="anthropic", status=429),
            make_row(ts=3.0, request_id="c", requested_model="m1", provider="anthropic", status=0),
            make_row(ts=4.0, request_id="d", requested_model="m2", provider="openai", status=302),
        ]
    )

    async def ids(**filters: str) -> list[str]:
        return [r.request_id for r in await store.recent(10, **filters)]

    assert await ids(model="m1") == ["c", "a"]
    assert await ids(provider="anthropic") == ["c", "b"]
    assert await ids(status="ok") == ["d", "a"]
    assert await ids(status="error") == ["c", "b"]
    assert await ids(model="m2", provider="openai", status="ok") == ["d"]
    with pytest.raises(ValueError, match="status"):
        await store.recent(status="failed")
    with pytest.raises(ValueError, match="limit"):
        await store.recent(0)


def _by_group(rows: list[SpendRow]) -> dict[tuple[str, ...], SpendRow]:
    return {tuple(r.group.values()): r for r in rows}


async def test_spend_groups_and_null_cost(store: LogStore) -> None:
    await store.insert(
        [
            make_row(ts=10.0, provider="openai", requested_model="m1", cost=0.25, key_id="k1"),
            make_row(ts=11.0, provider="openai", requested_model="m1", cost=None, key_id="k2", status=500),
            make_row(ts=12.0, provider="openai", requested_model="m2", cost=1.0, tenant="acme"),
            make_row(ts=13.0, provider="groq", requested_model="m1", cost=None, tenant="acme"),
            make_row(ts=99.0, provider="openai", requested_model="m1", cost=100.0),  # outside [10, 50)
        ]
    )
    rows = await store.spend(since=10.0, until=50.0)
    assert [r.group for r in rows] == [  # highest cost first
        {"provider": "openai", "model": "m2"},
        {"provider": "openai", "model": "m1"},
        {"provider": "groq", "model": "m1"},
    ]
    groups = _by_group(rows)
    m1 = groups[("openai", "m1")]
    assert (m1.requests, m1.errors, m1.cost, m1.unpriced) == (2, 1, 0.25, 1)
    assert (m1.input_tokens, m1.cached_tokens, m1.output_tokens, m1.reasoning_tokens) == (200, 40, 100, 10)
    groq = groups[("groq", "m1")]
    assert (groq.cost, groq.unpriced) == (0.0, 1)

    by_tenant = _by_group(await store.spend(since=10.0, until=50.0, group_by=["tenant"]))
    assert by_tenant[("acme",)].requests == 2
    assert by_tenant[("",)].requests == 2
    by_key = _by_group(await store.spend(since=0.0, group_by=["key", "upstream_model"]))
    assert by_key[("k1", "gpt-4o-mini-2024-07-18")].cost == 0.25

    (total,) = await store.spend(since=0.0, group_by=[])
    assert (total.group, total.requests, total.cost, total.unpriced) == ({}, 5, 101.25, 2)
    assert await store.spend(since=1000.0) == []
    with pytest.raises(ValueError, match="cannot group"):
        await store.spend(since=0.0, group_by=["colour"])


async def test_spend_by_utc_day(store: LogStore) -> None:
    def at(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    await store.insert(
        [
            make_row(ts=at("2024-03-01T23:59:59"), cost=1.0),
            make_row(ts=at("2024-03-02T00:00:01"), cost=2.0),
            make_row(ts=at("2024-03-02T12:00:00"), cost=None, provider="groq"),
            make_row(ts=at("2024-02-29T08:00:00"), cost=4.0),
        ]
    )
    rows = await store.spend(since=0.0, group_by=["day", "provider"])
    assert [(r.group["day"], r.group["provider"], r.cost) for r in rows] == [
        ("2024-02-29", "openai", 4.0),
        ("2024-03-01", "openai", 1.0),
        ("2024-03-02", "openai", 2.0),
        ("2024-03-02", "groq", 0.0),
    ]


# --- migrations -------------------------------------------------------------------------------


async def test_fresh_database_matches_tables(store: LogStore) -> None:
    async with store.engine.connect() as conn:
        assert await migrate(conn) == len(MIGRATIONS)  # idempotent
        assert await schema_version(conn) == len(MIGRATIONS)
        versions = (await conn.execute(text("SELECT version FROM schema_migrations"))).scalars().all()

        def shape(sync: Connection) -> tuple[list[str], set[str]]:
            inspector = inspect(sync)
            columns = [c["name"] for c in inspector.get_columns("requests")]
            indexes = {str(i["name"]) for i in inspector.get_indexes("requests")}
            return columns, indexes

        columns, indexes = await conn.run_sync(shape)
    assert sorted(versions) == [m.version for m in MIGRATIONS]
    assert columns == [c.name for c in requests.columns]
    assert indexes == {str(i.name) for i in requests.indexes}


def _add_note(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE requests ADD COLUMN note VARCHAR NOT NULL DEFAULT 'none'"))


WITH_NOTE = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "add note", _add_note))


async def test_upgrade_keeps_rows(store_url: str) -> None:
    old = await LogStore.open(store_url)
    rows = [make_row(ts=float(i), request_id=f"r{i}") for i in range(3)]
    await old.insert(rows)
    await old.close()

    new = await LogStore.open(store_url, migrations=WITH_NOTE)
    try:
        assert await new.recent() == rows[::-1]
        await new.insert([make_row(ts=9.0)])  # the old insert shape still works with the new column
        async with new.engine.connect() as conn:
            assert await schema_version(conn) == len(WITH_NOTE)
            notes = (await conn.execute(text("SELECT DISTINCT note FROM requests"))).scalars().all()
            assert notes == ["none"]
    finally:
        await new.close()

    with pytest.raises(RuntimeError, match="newer than this tollway"):
        await LogStore.open(store_url, migrations=MIGRATIONS)


async def test_concurrent_migrators_apply_each_step_once(store_url: str) -> None:
    applied: list[int] = []

    def slow_step(conn: Connection) -> None:
        applied.append(1)
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_sleep(0.2)"))
        _add_note(conn)

    migrations = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "slow", slow_step))
    stores = await asyncio.gather(*(LogStore.open(store_url, migrations=migrations) for _ in range(4)))
    try:
        assert applied == [1]
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version FROM schema_migrations"))).scalars().all()
        assert sorted(versions) == [m.version for m in migrations]
    finally:
        for opened in stores:
            await opened.close()


async def test_migration_versions_must_be_contiguous(store_url: str) -> None:
    gap = (*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap", _add_note))
    with pytest.raises(ValueError, match="in order"):
        await LogStore.open(store_url, migrations=gap)

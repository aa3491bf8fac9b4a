"""LogStore against a SQLite file and the real PostgreSQL server, side by side."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from conftest import PG_ADMIN_DSN, pg_dsn

from tollway.errors import StoreConflict, StoreError
from tollway.store import (
    MIGRATIONS,
    LogRow,
    LogStore,
    Migration,
    Session,
    SpendRow,
    StorageURL,
    connect,
    migrate,
    parse_storage_url,
    schema_version,
)
from tollway.store.migrations import ddl
from tollway.store.tables import COLUMNS

SCHEMA_V4 = json.loads((Path(__file__).parent / "data" / "schema_v4.json").read_text())

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
    return row._replace(**overrides)


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
    try:
        yield pg_dsn(name)
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
    assert parse_storage_url("sqlite:///data/log.db") == StorageURL("sqlite", "data/log.db")
    assert (tmp_path / "data").is_dir()
    absolute = tmp_path / "abs" / "deep" / "log.db"
    assert parse_storage_url(f"sqlite:///{absolute}") == StorageURL("sqlite", str(absolute))
    assert parse_storage_url(f"sqlite+aiosqlite:///{absolute}") == StorageURL("sqlite", str(absolute))
    assert absolute.parent.is_dir()
    assert parse_storage_url("postgresql://u@db.example:5433/logs") == StorageURL(
        "postgresql", "postgresql://u@db.example:5433/logs"
    )
    postgres = parse_storage_url("postgres://u:p@h/logs")
    assert postgres == StorageURL("postgresql", "postgresql://u:p@h/logs")
    assert str(postgres) == "postgresql://u:***@h/logs"  # what logs and messages show
    assert parse_storage_url("postgresql+asyncpg://u@h/logs").target == "postgresql://u@h/logs"
    for bad in (
        "mysql://h/db",
        "log.db",
        "sqlite://",
        "sqlite:///:memory:",
        "redis://localhost",
        "postgresql://",
    ):
        with pytest.raises(ValueError, match="storage url"):
            parse_storage_url(bad)


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = await connect(f"sqlite:///{tmp_path}/x.db")
    try:
        assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        assert await db.fetch_value("PRAGMA synchronous") == 1  # NORMAL
        assert await db.fetch_value("PRAGMA busy_timeout") == 5000
    finally:
        await db.close()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_database_layer(backend: str, tmp_path: Path, pg_database: str) -> None:
    """Placeholders, transactions (commit and rollback), conflicts and errors, alike on both."""
    if backend == "postgresql":
        await _reset_pg(pg_database)
    db = await connect(f"sqlite:///{tmp_path}/x.db" if backend == "sqlite" else pg_database)
    try:
        await db.execute("CREATE TABLE t (name VARCHAR NOT NULL PRIMARY KEY, n INTEGER, note TEXT)")
        await db.execute_many(
            "INSERT INTO t (name, n, note) VALUES (?, ?, ?)",
            [("a", 1, "it's"), ("b", 2, None), ("c", 3, "?")],
        )
        assert await db.fetch("SELECT name, n FROM t WHERE n >= ? ORDER BY name", 2) == [
            {"name": "b", "n": 2},
            {"name": "c", "n": 3},
        ]
        # a literal question mark is not a placeholder
        assert await db.fetch_value("SELECT name FROM t WHERE note = '?' AND n = ?", 3) == "c"
        assert await db.fetch_one("SELECT n FROM t WHERE name = ?", "zzz") is None
        assert await db.execute("UPDATE t SET n = n + 10 WHERE n < ?", 3) == 2

        async with db.transaction() as tx:
            await tx.execute("INSERT INTO t (name, n) VALUES (?, ?)", "d", 4)
        with pytest.raises(RuntimeError, match="boom"):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t (name, n) VALUES (?, ?)", "e", 5)
                raise RuntimeError("boom")
        assert await db.fetch_value("SELECT count(*) FROM t") == 4  # d committed, e rolled back

        with pytest.raises(StoreConflict):
            await db.execute("INSERT INTO t (name, n) VALUES (?, ?)", "a", 9)
        with pytest.raises(StoreError):
            await db.fetch("SELECT nope FROM t")
        with pytest.raises(StoreConflict):  # a failed batch writes none of its rows
            await db.execute_many("INSERT INTO t (name, n) VALUES (?, ?)", [("f", 6), ("a", 7)])
        assert await db.fetch_value("SELECT count(*) FROM t") == 4
        assert await db.fetch_value("SELECT n FROM t WHERE name = 'a'") == 11  # still usable

        # insert_many cuts a batch into multi-row statements on SQLite: every row, in order, once
        many = [(f"m{i:03d}", i, None if i % 2 else f"note {i}") for i in range(300)]
        await db.insert_many("t", ("name", "n", "note"), many)
        got = await db.fetch("SELECT name, n, note FROM t WHERE name LIKE 'm%' ORDER BY name")
        assert [(r["name"], r["n"], r["note"]) for r in got] == many
        with pytest.raises(StoreConflict):  # all or nothing, the clash in the last statement
            await db.insert_many("t", ("name", "n"), [(f"x{i}", i) for i in range(270)] + [("a", 0)])
        assert await db.fetch_value("SELECT count(*) FROM t WHERE name LIKE 'x%'") == 0
    finally:
        await db.close()


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


async def _shape(db: Session) -> dict[str, list[str]]:
    """Each table's column names, in order, as the database reports them."""
    tables: dict[str, list[str]] = {}
    for table in COLUMNS:
        if db.dialect == "sqlite":
            rows = await db.fetch(f"PRAGMA table_info({table})")
        else:
            rows = await db.fetch(
                "SELECT column_name AS name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
                table,
            )
        tables[table] = [r["name"] for r in rows]
    return tables


async def test_fresh_database_matches_tables(store: LogStore) -> None:
    db = store.db
    assert await migrate(db) == len(MIGRATIONS)  # idempotent
    assert await schema_version(db) == len(MIGRATIONS)
    versions = [r["version"] for r in await db.fetch("SELECT version FROM schema_migrations")]
    assert sorted(versions) == [m.version for m in MIGRATIONS]
    assert await _shape(db) == {table: list(columns) for table, columns in COLUMNS.items()}


async def _sqlite_schema(path: str) -> list[list[object]]:
    def read() -> list[list[object]]:
        conn = sqlite3.connect(path)
        try:
            out: list[list[object]] = []
            for table in COLUMNS:
                out += [[table, *r] for r in conn.execute(f"PRAGMA table_info({table})")]
                for index in sorted(conn.execute(f"PRAGMA index_list({table})"), key=lambda i: str(i[1])):
                    out.append(
                        [table, *index[1:3], [c[2] for c in conn.execute(f"PRAGMA index_info({index[1]})")]]
                    )
            out += [
                [" ".join(str(r[0]).split())]
                for r in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '%WHERE%'"
                )
            ]
            return out
        finally:
            conn.close()

    return await asyncio.to_thread(read)


@pytest.fixture
async def store_v4(store_url: str) -> AsyncIterator[LogStore]:
    """A log database built by migrations 1-4 only (the later ones are plain SQL from the start)."""
    opened = await LogStore.open(store_url, migrations=MIGRATIONS[:4])
    yield opened
    await opened.close()


async def test_schema_is_what_earlier_versions_created(store_v4: LogStore, tmp_path: Path) -> None:
    """Migrations 1-4 were first written with SQLAlchemy, and databases exist that it created. The
    plain-SQL migrations must build the same schema: tests/data/schema_v4.json is what SQLAlchemy
    made of them (types, nullability, defaults, keys, indexes, partial index conditions)."""
    store = store_v4
    db = store.db
    if db.dialect == "sqlite":
        reference = tmp_path / "reference.db"
        conn = sqlite3.connect(reference)
        for _, _, _, sql in sorted(SCHEMA_V4["sqlite"], key=lambda entry: entry[0] != "table"):
            conn.execute(sql)
        conn.close()
        assert store.url.dialect == "sqlite"
        assert await _sqlite_schema(store.url.target) == await _sqlite_schema(str(reference))
        return
    columns = await db.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') AS d "
        "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    indexes = await db.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "ORDER BY tablename, indexname"
    )
    assert [list(r.values()) for r in columns] == SCHEMA_V4["postgresql"]["columns"]
    assert [list(r.values()) for r in indexes] == SCHEMA_V4["postgresql"]["indexes"]


async def test_opens_a_log_an_earlier_version_wrote(tmp_path: Path) -> None:
    """A SQLite log written by the SQLAlchemy-based release (schema 4, tests/data/log_v4.sqlite.sql):
    its rows read back, and its key still authenticates."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "data" / "log_v4.sqlite.sql").read_text())
    conn.close()
    store = await LogStore.open(f"sqlite:///{path}")
    try:
        rows = await store.recent()
        assert [r.request_id for r in rows] == ["req_old2", "req_old1", "req_old0"]
        assert rows[0].stream is False and rows[1].stream is True and rows[0].cost == pytest.approx(0.0002)
        assert rows[2].status == 502 and rows[2].cost is None
        spend = await store.spend(since=0, group_by=["tenant"])
        assert [(r.group["tenant"], r.requests, r.errors) for r in spend] == [("acme", 3, 1)]
        from tollway.keys import secret
        from tollway.keys.repository import KeyRepository

        repo = KeyRepository(store.db)
        # the fixture's key, created by the old release; its secret was printed when the fixture was made
        key = await repo.by_hash(secret.digest("sk-tw-BlOzeDnHko2973MjXlbhDmliWoCAbleqa0h23WWwY3w"))
        assert key is not None and key.name == "old-key" and key.tenant == "acme" and key.cache is True
        assert (await repo.tenant("acme")).limits.rpm == 100
        await store.insert([make_row(request_id="req_new")])
        assert await store.count() == 4
    finally:
        await store.close()


async def _add_note(tx: Session) -> None:
    await tx.execute("ALTER TABLE requests ADD COLUMN note VARCHAR NOT NULL DEFAULT 'none'")


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
        assert await schema_version(new.db) == len(WITH_NOTE)
        notes = [r["note"] for r in await new.db.fetch("SELECT DISTINCT note FROM requests")]
        assert notes == ["none"]
    finally:
        await new.close()

    with pytest.raises(RuntimeError, match="newer than this tollway"):
        await LogStore.open(store_url, migrations=MIGRATIONS)


async def test_concurrent_migrators_apply_each_step_once(store_url: str) -> None:
    applied: list[int] = []

    async def slow_step(tx: Session) -> None:
        applied.append(1)
        if tx.dialect == "postgresql":
            await tx.execute("SELECT pg_sleep(0.2)")
        await _add_note(tx)

    migrations = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "slow", slow_step))
    stores = await asyncio.gather(*(LogStore.open(store_url, migrations=migrations) for _ in range(4)))
    try:
        assert applied == [1]
        versions = [r["version"] for r in await stores[0].db.fetch("SELECT version FROM schema_migrations")]
        assert sorted(versions) == [m.version for m in migrations]
    finally:
        for opened in stores:
            await opened.close()


async def test_migration_versions_must_be_contiguous(store_url: str) -> None:
    gap = (*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap", ddl("SELECT 1")))
    with pytest.raises(ValueError, match="in order"):
        await LogStore.open(store_url, migrations=gap)


async def test_postgres_connections_the_server_kills_are_replaced(pg_database: str) -> None:
    """A PostgreSQL restart (here: the server terminating our connections): the pool replaces the
    dead connections (a write that still meets one fails and the writer retries its batch), and
    every row arrives once."""
    from tollway.store import LogWriter

    await _reset_pg(pg_database)
    store = await LogStore.open(pg_database)
    writer = LogWriter(store, batch_size=10, flush_interval=0.02)
    await writer.start()

    async def written(n: int) -> None:
        for _ in range(500):
            if writer.written >= n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{writer.written} of {n} rows written")

    try:
        writer.enqueue(make_row(request_id="before"))
        await written(1)
        name = pg_database.rsplit("/", 1)[1]
        await _admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        for i in range(5):
            writer.enqueue(make_row(request_id=f"after{i}"))
        await written(6)
        assert await store.count() == 6
        assert writer.dropped == 0
    finally:
        await writer.stop()
        await store.close()

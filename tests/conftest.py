"""Shared fixtures: fake providers and gateways on real sockets, and where the test servers are.

PostgreSQL and Redis are real servers: ``TOLLWAY_TEST_PG`` (a DSN whose database is the admin one
that test databases are created from) and ``TOLLWAY_TEST_REDIS`` (a Redis URL) name them, and default
to the machine's own on 5432 and 6379. ``scripts/test.sh`` sets both, starting servers when none
answers.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tollway.config import Config, parse_config
from tollway.mock import MockOptions, RunningMock, start_mock
from tollway.server import RunningServer, start_server

MODELS = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
PG_ADMIN_DSN = os.environ.get("TOLLWAY_TEST_PG") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS") or "redis://127.0.0.1:6379/0"

GatewayFactory = Callable[..., Awaitable[RunningServer]]


@pytest.fixture(autouse=True)
def _tollway_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLWAY_HOME", str(tmp_path / "home"))


@pytest.fixture
async def mock_a() -> AsyncIterator[RunningMock]:
    mock = await start_mock(options=MockOptions(models=MODELS))
    yield mock
    await mock.close()


@pytest.fixture
async def mock_b() -> AsyncIterator[RunningMock]:
    mock = await start_mock(options=MockOptions(models=MODELS))
    yield mock
    await mock.close()


def two_provider_config(a_url: str, b_url: str, **extra: Any) -> Config:
    """mock-a first, mock-b as the failover target, both serving MODELS."""
    data: dict[str, Any] = {
        "providers": [
            {"name": "mock-a", "kind": "mock", "base_url": f"{a_url}/v1", "models": MODELS, "priority": 0},
            {"name": "mock-b", "kind": "mock", "base_url": f"{b_url}/v1", "models": MODELS, "priority": 1},
        ],
        "health": {"cooldown": 30},
    }
    for section, values in extra.items():
        data[section] = {**data.get(section, {}), **values} if isinstance(values, dict) else values
    return parse_config(data)


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[RunningServer] = []

    async def make(config: Config, *, storage: str | None = None) -> RunningServer:
        url = storage or f"sqlite:///{tmp_path / f'log{len(started)}.db'}"
        server = await start_server(config, storage=url)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.close()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    return await gateway_factory(two_provider_config(mock_a.url, mock_b.url))


def pg_dsn(database: str | None = None) -> str:
    """The test server's DSN, for ``database`` (the admin database when None)."""
    if database is None:
        return PG_ADMIN_DSN
    return urlsplit(PG_ADMIN_DSN)._replace(path=f"/{database}").geturl()


async def create_pg_database() -> str:
    """A fresh, empty database on the real PostgreSQL server; its URL."""
    import uuid

    import asyncpg  # type: ignore[import-untyped]

    name = f"tollway_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(pg_dsn())
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return pg_dsn(name)


async def drop_pg_database(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn())
    await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    await conn.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)

"""The response cache's per-key switch: a key whose caching is off is never answered from the cache nor
fills it, set from the CLI and the admin API, and keys from before the switch existed stay cached."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import GatewayFactory, create_pg_database, drop_pg_database, two_provider_config
from typer.testing import CliRunner

from tollway.cli import app
from tollway.keys.repository import KeyRepository
from tollway.mock import RunningMock
from tollway.server import RunningServer
from tollway.store import MIGRATIONS, LogStore, schema_version
from tollway.store.tables import API_KEYS_COLUMNS

ADMIN = "admin-secret-token"
MSG: Any = [{"role": "user", "content": "What is 2 + 2?"}]


def client(gw: RunningServer, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


async def cache_status(c: openai.AsyncOpenAI) -> str:
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG, temperature=0)
    assert raw.parse().choices[0].message.content
    return raw.headers.get("x-tollway-cache", "")


async def admin(gw: RunningServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, f"{gw.url}{path}", headers=headers, data=None if body is None else orjson.dumps(body)
        ) as r,
    ):
        return r.status, await r.json()


def upstream(*mocks: RunningMock) -> int:
    return sum(m.stats()["requests"] for m in mocks)


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    # the default cache settings: temperature_policy "skip" caches only temperature-0 calls
    cfg = two_provider_config(mock_a.url, mock_b.url, keys={"refresh_interval": 0.2}, admin={"token": ADMIN})
    return await gateway_factory(cfg)


async def test_a_key_with_caching_off_bypasses_the_cache(
    gw: RunningServer, mock_a: RunningMock, mock_b: RunningMock
) -> None:
    _, on = await admin(gw, "POST", "/admin/keys", {"name": "cached", "tenant": "acme"})
    _, off = await admin(gw, "POST", "/admin/keys", {"name": "uncached", "tenant": "acme", "cache": False})
    assert (on["cache"], off["cache"]) == (True, False)
    cached, uncached = client(gw, on["key"]), client(gw, off["key"])

    assert await cache_status(uncached) == "bypass"
    assert await cache_status(cached) == "miss"  # the uncached key's answer was not stored
    assert await cache_status(cached) == "hit"
    assert await cache_status(uncached) == "bypass"  # same tenant, same request: still not served from cache
    assert upstream(mock_a, mock_b) == 3

    # switched through this process's admin API: applies at once
    assert (await admin(gw, "PATCH", "/admin/keys/cached", {"cache": False}))[1]["cache"] is False
    assert await cache_status(cached) == "bypass"
    assert (await admin(gw, "PATCH", "/admin/keys/uncached", {"cache": True}))[1]["cache"] is True
    assert await cache_status(uncached) == "hit"
    assert upstream(mock_a, mock_b) == 4

    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    rows = sorted(await rt.store.recent(10), key=lambda r: r.ts)
    assert [(r.key_id, r.cache_status) for r in rows] == [
        (off["id"], "bypass"),
        (on["id"], "miss"),
        (on["id"], "hit"),
        (off["id"], "bypass"),
        (on["id"], "bypass"),
        (off["id"], "hit"),
    ]
    for c in (cached, uncached):
        await c.close()


async def test_cli_flag_round_trips_and_reaches_a_running_gateway(gw: RunningServer, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'log0.db'}"  # the gateway's own log file (gateway_factory's naming)
    runner = CliRunner()

    def cli(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json", "--storage", storage])
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)

    created = await asyncio.to_thread(
        cli, "keys", "create", "--name", "svc", "--tenant", "acme", "--no-cache"
    )
    assert created["cache"] is False
    assert (await asyncio.to_thread(cli, "keys", "create", "--name", "other"))["cache"] is True
    assert (await asyncio.to_thread(cli, "keys", "show", "svc"))["cache"] is False
    assert (await asyncio.to_thread(cli, "keys", "update", "svc", "--rpm", "100"))[
        "cache"
    ] is False  # unchanged
    c = client(gw, created["key"])
    assert await cache_status(c) == "bypass"
    assert await cache_status(c) == "bypass"

    assert (await asyncio.to_thread(cli, "keys", "update", "svc", "--cache"))["cache"] is True
    await asyncio.sleep(0.45)  # refresh_interval 0.2, plus slack
    assert await cache_status(c) == "miss"
    assert await cache_status(c) == "hit"
    listing = await asyncio.to_thread(cli, "keys", "list")
    assert {k["name"]: k["cache"] for k in listing} == {"svc": True, "other": True}
    assert (await asyncio.to_thread(cli, "keys", "update", "svc", "--no-cache"))["cache"] is False
    table = await asyncio.to_thread(runner.invoke, app, ["keys", "list", "--storage", storage])
    assert table.exit_code == 0 and "│ off " in table.stdout
    await c.close()


async def test_admin_api_field(gw: RunningServer) -> None:
    status, created = await admin(gw, "POST", "/admin/keys", {"name": "svc", "cache": False})
    assert status == 201 and created["cache"] is False
    assert (await admin(gw, "POST", "/admin/keys", {"name": "default"}))[1]["cache"] is True
    assert (await admin(gw, "GET", "/admin/keys/svc"))[1]["cache"] is False
    _, listing = await admin(gw, "GET", "/admin/keys")
    assert {k["name"]: k["cache"] for k in listing["data"]} == {"svc": False, "default": True}
    assert (await admin(gw, "PATCH", "/admin/keys/svc", {"rpm": 5}))[1]["cache"] is False  # unchanged
    assert (await admin(gw, "PATCH", "/admin/keys/svc", {"cache": True}))[1]["cache"] is True
    assert (await admin(gw, "PATCH", "/admin/keys/svc", {"cache": False}))[1]["cache"] is False
    for bad in ("no", 0, 1, "false"):
        status, body = await admin(gw, "POST", "/admin/keys", {"name": "x", "cache": bad})
        assert status == 400 and "cache" in body["error"]["message"]
        status, body = await admin(gw, "PATCH", "/admin/keys/svc", {"cache": bad})
        assert status == 400 and "cache" in body["error"]["message"]
    assert (await admin(gw, "GET", "/admin/keys/svc"))[1]["cache"] is False


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


async def test_upgrade_from_version_3_keeps_keys_cached(empty_db: str) -> None:
    old = await LogStore.open(empty_db, migrations=MIGRATIONS[:3])  # a tollway before the switch
    await old.db.execute(
        "INSERT INTO api_keys (id, name, tenant, key_hash, hint, models, status, created_at, updated_at) "
        "VALUES ('key_old', 'old', 'acme', 'h', 'sk-tw-…abcd', '[]', 'active', 1.0, 1.0)"
    )
    await old.close()

    new = await LogStore.open(empty_db)
    try:
        assert await schema_version(new.db) == len(MIGRATIONS) == 5
        if new.dialect == "sqlite":
            columns = [r["name"] for r in await new.db.fetch("PRAGMA table_info(api_keys)")]
        else:
            columns = [
                r["column_name"]
                for r in await new.db.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys' "
                    "ORDER BY ordinal_position"
                )
            ]
        assert columns == list(API_KEYS_COLUMNS)
        repo = KeyRepository(new.db)
        key = await repo.get("old")
        assert key.cache is True and key.to_json()["cache"] is True
        assert (await repo.by_hash("h")) == key
        assert (await repo.update("old", {"cache": False})).cache is False
        assert (await repo.update("old", {"cache": True})).cache is True
    finally:
        await new.close()

"""Limits that hold across processes: four ``tollway start`` gateways sharing the real Redis and a fresh
PostgreSQL log, a budget hit by 200 concurrent calls, a requests-per-minute limit, keys never in
clear in the database or the gateways' logs — and a Redis that dies mid-run and comes back."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson
import pytest
from conftest import REDIS_URL, GatewayFactory, create_pg_database, drop_pg_database, two_provider_config
from multidict import CIMultiDict
from test_limits import CALL_COST, MAX_TOKENS, PRICES, PROMPT
from test_limits_backends import drop_prefix

from tollway.keys.repository import KeyRepository
from tollway.keys.spec import KeySpec
from tollway.mock import RunningMock
from tollway.server import RunningServer
from tollway.store import LogStore

GATEWAYS = 4
BUDGET_CALLS = 37  # the budget fits exactly this many calls
RPM = 25


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int, proc: subprocess.Popen[bytes], path: str = "/health", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on port {port}")


def tollway(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child writes to its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "tollway", *args], stdout=out, stderr=subprocess.STDOUT
        )


@dataclass
class Cluster:
    ports: list[int]
    db_url: str
    secrets: dict[str, str]  # key name -> secret
    key_ids: dict[str, str]
    logs: list[Path]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("replicas")
    db_url = asyncio.run(create_pg_database())
    prefix = f"tollway-replicas-{uuid.uuid4().hex[:12]}"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mock_port = free_port()
        mock = tollway("mock", "--port", str(mock_port), log=work / "mock.log")
        procs.append(mock)
        prices = "\n".join(
            f'[prices."{m}"]\ninput = {p["input"]}\noutput = {p["output"]}' for m, p in PRICES.items()
        )
        config = work / "tollway.toml"
        config.write_text(f"""
[storage]
url = "{db_url}"
flush_interval = 0.05

[keys]
refresh_interval = 0.5

[limits]
backend = "redis"
redis_url = "{REDIS_URL}"
redis_prefix = "{prefix}"
redis_timeout = 5.0

[[providers]]
name = "mock"
kind = "mock"
base_url = "http://127.0.0.1:{mock_port}/v1"
models = ["gpt-4o-mini"]

{prices}
""")
        secrets, key_ids = asyncio.run(_create_keys(db_url))
        ports = [free_port() for _ in range(GATEWAYS)]
        logs = [work / f"gateway{i}.log" for i in range(GATEWAYS)]
        procs += [
            tollway("start", "--config", str(config), "--port", str(port), log=log)
            for port, log in zip(ports, logs, strict=True)
        ]
        wait_for(mock_port, mock, "/__mock/stats")
        for port, proc in zip(ports, procs[1:], strict=True):
            wait_for(port, proc)
        yield Cluster(ports, db_url, secrets, key_ids, logs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_pg_database(db_url))
        asyncio.run(drop_prefix(prefix))


async def _create_keys(db_url: str) -> tuple[dict[str, str], dict[str, str]]:
    store = await LogStore.open(db_url)
    try:
        repo = KeyRepository(store.db)
        secrets: dict[str, str] = {}
        ids: dict[str, str] = {}
        specs: list[dict[str, Any]] = [
            {"name": "budget", "budget": BUDGET_CALLS * CALL_COST},
            {"name": "rpm", "rpm": RPM},
        ]
        for spec in specs:
            key, secrets[spec["name"]] = await repo.create(KeySpec.parse(spec))
            ids[key.name] = key.id
        return secrets, ids
    finally:
        await store.close()


async def call(session: aiohttp.ClientSession, port: int, secret: str) -> tuple[int, Any]:
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": PROMPT}]}
    )
    async with session.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=body,
        headers={"Authorization": f"Bearer {secret}"},
    ) as r:
        return r.status, orjson.loads(await r.read())


async def burst(cluster: Cluster, secret: str, n: int) -> list[tuple[int, Any]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return await asyncio.gather(*(call(session, cluster.ports[i % GATEWAYS], secret) for i in range(n)))


async def logged(db_url: str, key_id: str, expected: int) -> tuple[int, float]:
    """(rows, total cost) of one key in the shared log, once all ``expected`` rows are written."""
    conn = await asyncpg.connect(db_url)
    try:
        for _ in range(100):
            rows, cost = await conn.fetchrow(
                "SELECT count(*), coalesce(sum(cost), 0) FROM requests WHERE key_id = $1", key_id
            )
            if rows >= expected:
                return rows, cost
            await asyncio.sleep(0.05)
        return rows, cost
    finally:
        await conn.close()


async def test_budget_holds_across_four_processes(cluster: Cluster) -> None:
    results = await burst(cluster, cluster.secrets["budget"], 200)
    statuses = [status for status, _ in results]
    assert statuses.count(200) == BUDGET_CALLS  # everything that fits, and nothing more
    refused = [body["error"] for status, body in results if status != 200]
    assert len(refused) == 200 - BUDGET_CALLS and {e["code"] for e in refused} == {"budget_exceeded"}
    rows, cost = await logged(cluster.db_url, cluster.key_ids["budget"], 200)
    assert rows == 200
    assert cost <= BUDGET_CALLS * CALL_COST + 1e-12
    assert cost == pytest.approx(BUDGET_CALLS * CALL_COST, abs=1e-12)


async def test_requests_per_minute_is_global(cluster: Cluster) -> None:
    results = await burst(cluster, cluster.secrets["rpm"], 3 * RPM)
    statuses = [status for status, _ in results]
    assert statuses.count(200) == RPM and statuses.count(429) == 2 * RPM
    assert all(
        f"{RPM} requests per minute" in body["error"]["message"] for status, body in results if status == 429
    )


async def test_keys_never_in_clear_in_database_or_logs(cluster: Cluster) -> None:
    await burst(cluster, cluster.secrets["rpm"] + "-wrong", 4)
    conn = await asyncpg.connect(cluster.db_url)
    try:
        tables = [
            r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        dump = "".join([str(await conn.fetch(f'SELECT * FROM "{t}"')) for t in tables])
    finally:
        await conn.close()
    assert "api_keys" in tables and "requests" in tables and len(dump) > 1000
    logs = "".join(p.read_text() for p in cluster.logs)
    assert "running OPEN" not in logs and "limits: redis backend ready" in logs
    for secret in cluster.secrets.values():
        for needle in (secret, secret[6:], secret[6:26]):
            assert needle not in dump
            assert needle not in logs


# -- Redis dies mid-run --------------------------------------------------------------------------


class ThrowawayRedis:
    """A private redis-server (never the machine's own) on a free port, killed and restarted at will."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server is not None, "redis-server must be installed"
        self._proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.01)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    yield redis
    redis.kill()


async def health(gw: RunningServer) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{gw.url}/health") as r:
        payload: dict[str, Any] = await r.json()
        return payload


async def test_redis_outage_follows_the_policy_and_recovers(
    gateway_factory: GatewayFactory,
    mock_a: RunningMock,
    mock_b: RunningMock,
    tmp_path: Path,
    throwaway_redis: ThrowawayRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = throwaway_redis.port
    gateways: dict[str, RunningServer] = {}
    secrets: dict[str, str] = {}
    for policy in ("fail_open", "fail_closed"):
        cfg = two_provider_config(
            mock_a.url,
            mock_b.url,
            prices=PRICES,
            limits={
                "backend": "redis",
                "redis_url": f"redis://127.0.0.1:{port}/0",
                "on_unavailable": policy,
                "redis_timeout": 0.2,
                "redis_prefix": f"outage-{policy}",
            },
        )
        gw = gateways[policy] = await gateway_factory(cfg, storage=f"sqlite:///{tmp_path / policy}.db")
        rt = gw.gateway.runtime
        assert rt is not None and rt.keys is not None
        _, secrets[policy] = await rt.keys.repo.create(KeySpec.parse({"name": "k", "budget": 6 * CALL_COST}))

    async def chat(policy: str) -> tuple[int, CIMultiDict[str], Any]:
        gw = gateways[policy]
        body = orjson.dumps(
            {
                "model": "gpt-4o-mini",
                "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": PROMPT}],
            }
        )
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{gw.url}/v1/chat/completions",
                data=body,
                headers={"Authorization": f"Bearer {secrets[policy]}"},
            ) as r,
        ):
            return r.status, CIMultiDict(r.headers), orjson.loads(await r.read())

    for policy in gateways:
        assert (await chat(policy))[0] == 200
        assert (await health(gateways[policy]))["limits"] == {
            "backend": "redis",
            "state": "ok",
            "policy": policy,
        }

    throwaway_redis.kill()  # Redis dies mid-run
    status, headers, _ = await chat("fail_open")
    assert status == 200 and headers["x-tollway-limits"] == "unavailable"
    assert (await chat("fail_open"))[0] == 200
    status, headers, body = await chat("fail_closed")
    assert status == 503 and body["error"]["code"] == "limits_unavailable" and "retry-after" in headers
    for policy in gateways:
        limits = (await health(gateways[policy]))["limits"]
        assert limits["state"] == "unreachable" and limits["policy"] == policy
    assert (await health(gateways["fail_open"]))["limits"]["admitted_without_limits"] == 2
    assert sum("UNREACHABLE" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records) == 2

    for gw in gateways.values():  # the log must hold the outage's calls before budgets are re-seeded
        assert gw.gateway.runtime is not None and gw.gateway.runtime.writer is not None
        await gw.gateway.runtime.writer.flush()
    throwaway_redis.start()  # and comes back, empty
    for _ in range(100):
        states = {(await health(gw))["limits"]["state"] for gw in gateways.values()}
        if states == {"ok"}:
            break
        await asyncio.sleep(0.05)
    assert states == {"ok"}
    assert any("answers again" in r.getMessage() for r in caplog.records)
    # Redis came back empty: budgets start again from the request log, outage calls included.
    # fail_open: 1 + 2 calls spent, 3 left; fail_closed: 1 spent, 5 left.
    assert [(await chat("fail_open"))[0] for _ in range(4)] == [200, 200, 200, 429]
    assert [(await chat("fail_closed"))[0] for _ in range(6)] == [200] * 5 + [429]

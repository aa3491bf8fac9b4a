"""Virtual keys end to end: open mode, both client headers, 401/403 envelopes, changes made by
another process reaching a running gateway, the admin API, and keys never stored or logged in clear."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from conftest import GatewayFactory, two_provider_config
from rich.console import Console
from typer.testing import CliRunner

from tollway.cli import app
from tollway.cli.reports import print_spend
from tollway.keys.key import VirtualKey
from tollway.keys.repository import KeyRepository
from tollway.keys.spec import KeySpec
from tollway.mock import RunningMock
from tollway.server import RunningServer
from tollway.store import LogStore

MSG: Any = [{"role": "user", "content": "hello"}]
ADMIN = "admin-secret-token"


def client(gw: RunningServer, key: str = "none") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0)


async def post_chat(
    gw: RunningServer, headers: dict[str, str], model: str = "gpt-4o-mini"
) -> tuple[int, Any]:
    body = orjson.dumps({"model": model, "messages": MSG})
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{gw.url}/v1/chat/completions", data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def admin(
    gw: RunningServer, method: str, path: str, body: Any = None, token: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            method, f"{gw.url}{path}", headers=headers, data=None if body is None else orjson.dumps(body)
        ) as r,
    ):
        return r.status, await r.json()


def repo_of(gw: RunningServer) -> KeyRepository:
    rt = gw.gateway.runtime
    assert rt is not None and rt.keys is not None
    return rt.keys.repo


async def create_key(gw: RunningServer, **data: Any) -> tuple[VirtualKey, str]:
    """As another process would: straight into the database, not into this gateway's cache."""
    return await repo_of(gw).create(KeySpec.parse({"name": "k", **data}))


@pytest.fixture
async def gw(gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock) -> RunningServer:
    cfg = two_provider_config(
        mock_a.url, mock_b.url, keys={"refresh_interval": 0.2, "negative_ttl": 0.2}, admin={"token": ADMIN}
    )
    return await gateway_factory(cfg)


async def test_open_until_a_key_exists(
    gateway_factory: GatewayFactory,
    mock_a: RunningMock,
    mock_b: RunningMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "tollway")
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url, keys={"refresh_interval": 0.2}))
    assert any("running OPEN" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert (await post_chat(gw, {}))[0] == 200
    _, secret = await create_key(gw)
    await asyncio.sleep(0.5)  # the next refresh sees a key exists
    status, body = await post_chat(gw, {})
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert (await post_chat(gw, {"Authorization": f"Bearer {secret}"}))[0] == 200
    assert any("stops running open" in r.getMessage() for r in caplog.records)


async def test_bearer_and_x_api_key_and_error_envelopes(gw: RunningServer) -> None:
    key, secret = await create_key(gw, models=["gpt-4o-mini"], tenant="acme")
    c = client(gw, secret)
    raw = await c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.parse().choices[0].message.content
    assert (await post_chat(gw, {"x-api-key": secret}))[0] == 200  # Anthropic clients' header

    with pytest.raises(openai.PermissionDeniedError) as denied:
        await c.chat.completions.create(model="gpt-4o", messages=MSG)
    assert denied.value.code == "model_not_allowed" and "gpt-4o-mini" in denied.value.message
    bad = client(gw, "sk-tw-wrong")
    with pytest.raises(openai.AuthenticationError) as failed:
        await bad.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert failed.value.code == "invalid_api_key"
    assert failed.value.body == {
        "message": "Incorrect API key provided.",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
    await bad.close()
    status, body = await post_chat(gw, {})
    assert status == 401 and "Missing API key" in body["error"]["message"]

    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None and rt.store is not None
    await rt.writer.flush()
    rows = await rt.store.recent(10)
    assert {(r.status, r.key_id, r.tenant) for r in rows} >= {
        (200, key.id, "acme"),
        (403, key.id, "acme"),
        (401, "", ""),
    }
    await c.close()


async def test_expired_key_is_refused(gw: RunningServer) -> None:
    _, secret = await create_key(gw, expires=time.time() - 1)
    status, body = await post_chat(gw, {"Authorization": f"Bearer {secret}"})
    assert status == 401 and "expired" in body["error"]["message"]


async def test_changes_from_another_process_reach_a_running_gateway(
    gw: RunningServer, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'log0.db'}"  # the gateway's own log file (gateway_factory's naming)
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, [*args, "--storage", storage])
        assert result.exit_code == 0, result.output
        return result.stdout

    secret = (await asyncio.to_thread(cli, "keys", "create", "--name", "svc", "--rpm", "100")).strip()
    assert secret.startswith("sk-tw-")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await post_chat(gw, bearer))[0] == 200  # a new key works at once (looked up on a cache miss)

    await asyncio.to_thread(cli, "keys", "disable", "svc")
    await asyncio.sleep(0.45)  # refresh_interval 0.2, plus slack
    assert (await post_chat(gw, bearer))[0] == 401
    await asyncio.to_thread(cli, "keys", "enable", "svc")
    await asyncio.sleep(0.45)
    assert (await post_chat(gw, bearer))[0] == 200

    rotated = (await asyncio.to_thread(cli, "keys", "rotate", "svc")).strip()
    assert (await post_chat(gw, {"Authorization": f"Bearer {rotated}"}))[0] == 200
    await asyncio.sleep(0.45)
    assert (await post_chat(gw, bearer))[0] == 401

    await asyncio.to_thread(cli, "keys", "delete", "svc")
    await asyncio.sleep(0.45)
    assert (await post_chat(gw, {"Authorization": f"Bearer {rotated}"}))[0] == 401
    listing = orjson.loads(await asyncio.to_thread(cli, "keys", "list", "--deleted", "--json"))
    assert [(k["name"], k["status"]) for k in listing] == [("svc", "deleted")]


async def test_admin_api(gw: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # without the token, every admin path answers the same 401, known or not
    answers = [
        await admin(gw, "GET", path, token=token)
        for path in ("/admin/keys", "/admin/spend", "/admin/nope")
        for token in (None, "wrong")
    ]
    assert {status for status, _ in answers} == {401}
    assert len({orjson.dumps(body) for _, body in answers}) == 1
    assert (await admin(gw, "GET", "/admin/nope"))[0] == 404

    status, created = await admin(
        gw,
        "POST",
        "/admin/keys",
        {"name": "svc", "rpm": 5, "tenant": "acme", "models": ["gpt-4o-mini"], "budget": 10},
    )
    assert status == 201 and created["key"].startswith("sk-tw-") and created["rpm"] == 5
    assert created["budget"] == {"amount": 10.0, "period": "month", "action": "block"}
    secret = created["key"]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await post_chat(gw, bearer))[0] == 200

    status, listing = await admin(gw, "GET", "/admin/keys")
    assert status == 200 and [k["name"] for k in listing["data"]] == ["svc"]
    assert "key" not in listing["data"][0] and "key_hash" not in listing["data"][0]
    assert (await admin(gw, "PATCH", "/admin/keys/svc", {"rpm": 10}))[1]["rpm"] == 10
    assert (await admin(gw, "POST", "/admin/keys", {"name": "svc"}))[0] == 409
    status, body = await admin(gw, "POST", "/admin/keys", {"name": "x", "rpm": -1})
    assert status == 400 and "rpm" in body["error"]["message"]
    assert (await admin(gw, "POST", "/admin/keys", {"name": "x", "colour": "red"}))[0] == 400
    assert (await admin(gw, "DELETE", "/admin/keys"))[0] == 405

    # changes through this process's admin API apply to its cache at once
    assert (await admin(gw, "POST", "/admin/keys/svc/disable"))[1]["status"] == "disabled"
    assert (await post_chat(gw, bearer))[0] == 401
    await admin(gw, "POST", "/admin/keys/svc/enable")
    status, rotated = await admin(gw, "POST", "/admin/keys/svc/rotate")
    assert status == 200 and rotated["key"] != secret and rotated["id"] == created["id"]
    assert (await post_chat(gw, bearer))[0] == 401
    bearer = {"Authorization": f"Bearer {rotated['key']}"}
    assert (await post_chat(gw, bearer))[0] == 200

    status, tenant = await admin(
        gw, "PUT", "/admin/tenants/acme", {"rpm": 100, "budget": 50, "budget_period": "day"}
    )
    assert status == 200 and tenant["budget"]["period"] == "day"
    status, tenants = await admin(gw, "GET", "/admin/tenants")
    assert [(t["name"], t["keys"]) for t in tenants["data"]] == [("acme", 1)]

    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None
    await rt.writer.flush()
    status, report = await admin(gw, "GET", "/admin/spend?by=key,tenant&period=today")
    assert status == 200
    mine = [r for r in report["data"] if r["key"] == "svc"]
    assert len(mine) == 1 and mine[0]["key_id"] == created["id"] and mine[0]["tenant"] == "acme"
    assert mine[0]["requests"] >= 3 and mine[0]["cost"] > 0
    status, shown = await admin(gw, "GET", "/admin/keys/svc")
    assert status == 200 and shown["budget_spent"] == pytest.approx(mine[0]["cost"])
    assert (await admin(gw, "GET", "/admin/spend?by=colour"))[0] == 400

    assert (await admin(gw, "DELETE", "/admin/keys/svc"))[1]["status"] == "deleted"
    assert (await post_chat(gw, bearer))[0] == 401
    assert (await admin(gw, "GET", f"/admin/keys/{created['id']}"))[1]["status"] == "deleted"
    assert (await admin(gw, "DELETE", "/admin/tenants/acme"))[0] == 200
    assert (await admin(gw, "GET", "/admin/tenants/acme"))[0] == 404


async def test_admin_token_from_environment(
    gateway_factory: GatewayFactory, mock_a: RunningMock, mock_b: RunningMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLWAY_ADMIN_TOKEN", "from-env")
    gw = await gateway_factory(two_provider_config(mock_a.url, mock_b.url))
    assert (await admin(gw, "GET", "/admin/keys", token="from-env"))[0] == 200
    assert (await admin(gw, "GET", "/admin/keys"))[0] == 401


async def test_keys_are_never_stored_or_logged_in_clear(
    gw: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _status, created = await admin(gw, "POST", "/admin/keys", {"name": "svc"})
    secret = created["key"]
    await post_chat(gw, {"Authorization": f"Bearer {secret}"})
    await post_chat(gw, {"x-api-key": secret + "x"})  # a wrong key near the right one
    await post_chat(gw, {"Authorization": f"Bearer {secret}"}, model="no-such-model")
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None
    await rt.writer.flush()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("log0.db*"))  # the file, its WAL and SHM
    assert len(stored) > 0
    for needle in (secret, secret[6:], secret[-20:]):
        assert needle.encode() not in stored
        assert needle not in caplog.text
    assert created["hint"] == "sk-tw-…" + secret[-4:]

    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["keys", "list", "--json", "--storage", f"sqlite:///{tmp_path / 'log0.db'}"]
    )
    assert secret[6:] not in result.output


async def test_spend_report_names_keys(gw: RunningServer, tmp_path: Path) -> None:
    _, created = await admin(gw, "POST", "/admin/keys", {"name": "reporting-key"})
    await post_chat(gw, {"Authorization": f"Bearer {created['key']}"})
    rt = gw.gateway.runtime
    assert rt is not None and rt.writer is not None
    await rt.writer.flush()
    out = io.StringIO()
    await print_spend(
        f"sqlite:///{tmp_path / 'log0.db'}", ["key"], "today", console=Console(file=out, width=200)
    )
    assert "reporting-key" in out.getvalue() and created["id"] not in out.getvalue()


async def test_repository_on_postgres(pg_url: str) -> None:
    store = await LogStore.open(pg_url)
    try:
        repo = KeyRepository(store.db)
        key, secret = await repo.create(
            KeySpec.parse(
                {
                    "name": "a",
                    "tenant": "t",
                    "rpm": 3,
                    "budget": 1.5,
                    "budget_period": "week",
                    "models": "m1,m2*",
                }
            )
        )
        assert (await repo.by_hash(key.key_hash)) == key
        assert key.allows("m1") and key.allows("m2-large") and not key.allows("m3")
        await repo.set_status("a", key.status.DELETED)
        again, _ = await repo.create(KeySpec.parse({"name": "a"}))  # a deleted key's name is free again
        assert (await repo.get("a")).id == again.id
        assert (await repo.names([key.id, again.id])) == {key.id: "a", again.id: "a"}
        assert sorted(k.id for k in await repo.changed_since(0)) == sorted(
            [key.id, again.id]
        )  # no order promised
        dump = str(await store.db.fetch("SELECT * FROM api_keys"))
        assert secret not in dump and secret[6:] not in dump
    finally:
        await store.close()


async def test_anthropic_clients_use_x_api_key(gw: RunningServer) -> None:
    import anthropic

    _, secret = await create_key(gw, models=["gpt-4o-mini"])
    _, broke = await create_key(gw, name="broke", budget=0.0)
    msg: Any = [{"role": "user", "content": "hello"}]
    good = anthropic.AsyncAnthropic(base_url=gw.url, api_key=secret, max_retries=0)
    answer = await good.messages.create(model="gpt-4o-mini", max_tokens=10, messages=msg)
    assert answer.content
    with pytest.raises(anthropic.PermissionDeniedError):
        await good.messages.create(model="gpt-4o", max_tokens=10, messages=msg)
    poor = anthropic.AsyncAnthropic(base_url=gw.url, api_key=broke, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as limited:  # a zero budget admits nothing priced
        await poor.messages.create(model="gpt-4o-mini", max_tokens=10, messages=msg)
    body: Any = limited.value.body
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    assert "Budget exceeded" in body["error"]["message"]
    bad = anthropic.AsyncAnthropic(base_url=gw.url, api_key="sk-tw-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as failed:
        await bad.messages.create(model="gpt-4o-mini", max_tokens=10, messages=msg)
    body = failed.value.body
    assert body["error"]["type"] == "authentication_error"
    for c in (good, poor, bad):
        await c.close()


async def test_models_list_needs_a_key_and_shows_only_allowed_models(gw: RunningServer) -> None:
    _, secret = await create_key(gw, name="narrow", models=["gpt-4o-mini"])
    async with aiohttp.ClientSession() as s:
        for _ in range(100):  # the key was created "elsewhere": open mode ends at the next refresh
            async with s.get(f"{gw.url}/v1/models") as r:
                status, body = r.status, await r.json()
            if status != 200:
                break
            await asyncio.sleep(0.02)
        assert status == 401 and body["error"]["type"] == "authentication_error"
        async with s.get(f"{gw.url}/v1/models", headers={"Authorization": "Bearer sk-tw-wrong"}) as r:
            assert r.status == 401
    async with client(gw, secret) as c, client(gw, "sk-tw-wrong") as wrong:
        listed = [m.id async for m in c.models.list()]
        assert listed == ["gpt-4o-mini"]
        assert (await c.models.retrieve("gpt-4o-mini")).id == "gpt-4o-mini"
        with pytest.raises(openai.NotFoundError):  # served, but not to this key
            await c.models.retrieve("gpt-4o")
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.retrieve("gpt-4o-mini")

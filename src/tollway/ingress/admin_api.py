"""The admin API under ``/admin/``: virtual keys, tenants and spend reports, as JSON.

Every route needs ``Authorization: Bearer <admin token>`` (``admin.token`` or
``$TOLLWAY_ADMIN_TOKEN``). Without the right token — or with no token configured — every path under
``/admin/``, existing or not, answers the same 401, so nothing about the API or its data shows.

    GET    /admin/keys                    list (?tenant=NAME, ?deleted=true)
    POST   /admin/keys                    create; the answer holds the key, shown this once
    GET    /admin/keys/{id or name}       show (with this budget period's spend)
    PATCH  /admin/keys/{id or name}       change tenant, models, limits, budget, expiry or cache
    POST   /admin/keys/{id or name}/disable | /enable | /rotate
    DELETE /admin/keys/{id or name}
    GET    /admin/tenants                 list
    GET    /admin/tenants/{name}          show
    PUT    /admin/tenants/{name}          set its limits and budget
    DELETE /admin/tenants/{name}          remove its limits
    GET    /admin/spend?by=key,tenant,model,provider,day&period=today|week|month|all|24h|7d
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson

from ..asgi import JSON_HEADERS, Receive, Scope, Send, parse_object, read_body, respond, respond_json
from ..config import Config
from ..errors import (
    AuthenticationFailed,
    ClientDisconnected,
    InvalidRequest,
    KeyStoreUnavailable,
    MethodNotAllowed,
    NotFound,
    StoreError,
    TollwayError,
)
from ..keys.key import KeyStatus, VirtualKey
from ..keys.repository import KeyRepository
from ..keys.spec import (
    TENANT_FIELDS,
    KeySpec,
    check_fields,
    check_name,
    parse_cache,
    parse_expires,
    parse_limits,
    parse_models,
)
from ..limits.period import current, start_of
from ..runtime import Runtime
from ..store.queries import GROUP_KEYS

PREFIX = "/admin/"
log = logging.getLogger("tollway.admin")

Params = dict[str, list[str]]
AdminHandler = Callable[[Runtime, list[str], Params, bytes], Awaitable[tuple[int, Any]]]


def admin_token(config: Config) -> str:
    return config.admin.token or os.environ.get("TOLLWAY_ADMIN_TOKEN", "")


def authorized(config: Config, scope: Scope) -> bool:
    token = admin_token(config)
    if not token:
        return False
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())
    return False


async def dispatch(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        if not authorized(rt.config, scope):
            raise AuthenticationFailed("An admin token is required: 'Authorization: Bearer <admin token>'.")
        parts = [p for p in scope["path"][len(PREFIX) :].split("/") if p]
        handler, args = _route(scope["method"], parts)
        body = b""
        if scope["method"] in ("POST", "PUT", "PATCH"):
            body = await read_body(scope, receive, rt.config.server.max_body_bytes)
        params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        status, payload = await handler(rt, args, params, body)
    except ClientDisconnected:  # before TollwayError: there is no one to answer
        return
    except StoreError as exc:  # before TollwayError: the database's own message stays in the log
        log.error("admin API: the database failed: %r", exc)
        unavailable = KeyStoreUnavailable("The key store is unreachable; retry shortly.")
        await respond(send, unavailable.status, orjson.dumps(unavailable.openai_envelope()), JSON_HEADERS)
        return
    except TollwayError as exc:
        await respond(send, exc.status, orjson.dumps(exc.openai_envelope()), JSON_HEADERS)
        return
    await respond_json(send, status, payload, [(b"cache-control", b"no-store")])


def _route(method: str, parts: list[str]) -> tuple[AdminHandler, list[str]]:
    allowed: list[str] = []
    for verb, pattern, handler in _ROUTES:
        if len(pattern) != len(parts) or any(
            p != "*" and p != part for p, part in zip(pattern, parts, strict=True)
        ):
            continue
        if verb == method:
            return handler, [part for p, part in zip(pattern, parts, strict=True) if p == "*"]
        allowed.append(verb)
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed here; use {', '.join(allowed)}.")
    raise NotFound(f"Unknown admin path /admin/{'/'.join(parts)}.")


def _object(body: bytes) -> dict[str, Any]:
    return parse_object(body) if body.strip() else {}


def _repo(rt: Runtime) -> KeyRepository:
    return rt.keys.repo


def _remember(rt: Runtime, key: VirtualKey) -> None:
    rt.keys.apply(key)


# -- keys -----------------------------------------------------------------------------------------


async def list_keys(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    deleted = params.get("deleted", ["false"])[0].lower() in ("1", "true", "yes")
    tenant = params.get("tenant", [None])[0]
    keys = await _repo(rt).list_keys(deleted=deleted, tenant=tenant)
    return 200, {"object": "list", "data": [k.to_json() for k in keys]}


async def create_key(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    spec = KeySpec.parse(_object(body))
    key, secret = await _repo(rt).create(spec)
    _remember(rt, key)
    return 201, {"key": secret, **key.to_json()}


async def show_key(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    key = await _repo(rt).get(args[0], deleted=True)
    out = key.to_json()
    rule = key.limits.budget
    if rule is not None:
        span = current(rule.period, ZoneInfo(rt.config.budgets.timezone), time.time())
        out["budget_spent"] = await rt.store.spent_since("key", key.id, span.start)
        out["budget_period_start"] = span.start
    return 200, out


async def update_key(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    data = _object(body)
    check_fields(data, frozenset({"tenant", "models", "expires", "cache", *TENANT_FIELDS}))
    repo = _repo(rt)
    key = await repo.get(args[0])
    changes: dict[str, Any] = {}
    if "tenant" in data:
        changes["tenant"] = check_name(data["tenant"], "tenant") if data["tenant"] else ""
    if "models" in data:
        changes["models"] = parse_models(data["models"])
    if "expires" in data:
        changes["expires_at"] = parse_expires(data["expires"])
    if "cache" in data:
        changes["cache"] = parse_cache(data["cache"])
    if TENANT_FIELDS & set(data):
        changes["limits"] = parse_limits(data, key.limits)
    key = await repo.update(key.id, changes)
    _remember(rt, key)
    return 200, key.to_json()


def _status_change(status: KeyStatus) -> AdminHandler:
    async def change(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
        key = await _repo(rt).set_status(args[0], status)
        _remember(rt, key)
        return 200, key.to_json()

    return change


async def rotate_key(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    key, secret = await _repo(rt).rotate(args[0])
    _remember(rt, key)
    return 200, {"key": secret, **key.to_json()}


# -- tenants --------------------------------------------------------------------------------------


async def list_tenants(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    repo = _repo(rt)
    counts = await repo.tenant_key_counts()
    data = [{**t.to_json(), "keys": counts.get(t.name, 0)} for t in await repo.tenants()]
    return 200, {"object": "list", "data": data}


async def show_tenant(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    return 200, (await _repo(rt).tenant(args[0])).to_json()


async def put_tenant(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    data = _object(body)
    check_fields(data, TENANT_FIELDS)
    tenant = await _repo(rt).put_tenant(check_name(args[0], "tenant"), parse_limits(data))
    rt.keys.apply_tenant(tenant)
    return 200, tenant.to_json()


async def delete_tenant(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    await _repo(rt).delete_tenant(args[0])
    rt.keys.apply_tenant(None, args[0])
    return 200, {"name": args[0], "deleted": True}


# -- spend ----------------------------------------------------------------------------------------


async def spend(rt: Runtime, args: list[str], params: Params, body: bytes) -> tuple[int, Any]:
    by = [g.strip() for g in ",".join(params.get("by", ["key"])).split(",") if g.strip()]
    unknown = [g for g in by if g not in GROUP_KEYS]
    if unknown:
        raise InvalidRequest(
            f"Cannot group spend by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}.", param="by"
        )
    period = params.get("period", ["month"])[0]
    try:
        since = start_of(period, ZoneInfo(rt.config.budgets.timezone), time.time())
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="period") from None
    rows = await rt.store.spend(since=since, group_by=by)
    names = await _repo(rt).names(r.group.get("key", "") for r in rows) if "key" in by else {}
    data = []
    for r in rows:
        group: dict[str, Any] = dict(r.group)
        if "key" in group:
            group["key_id"] = group["key"] or None
            group["key"] = names.get(group["key"], group["key"]) or None
        data.append(
            {
                **group,
                "requests": r.requests,
                "errors": r.errors,
                "input_tokens": r.input_tokens,
                "cached_tokens": r.cached_tokens,
                "output_tokens": r.output_tokens,
                "reasoning_tokens": r.reasoning_tokens,
                "cost": r.cost,
                "unpriced": r.unpriced,
            }
        )
    return 200, {
        "object": "list",
        "by": by,
        "period": period,
        "since": since,
        "total_cost": sum(r.cost for r in rows),
        "data": data,
    }


_ROUTES: list[tuple[str, tuple[str, ...], AdminHandler]] = [
    ("GET", ("keys",), list_keys),
    ("POST", ("keys",), create_key),
    ("GET", ("keys", "*"), show_key),
    ("PATCH", ("keys", "*"), update_key),
    ("DELETE", ("keys", "*"), _status_change(KeyStatus.DELETED)),
    ("POST", ("keys", "*", "disable"), _status_change(KeyStatus.DISABLED)),
    ("POST", ("keys", "*", "enable"), _status_change(KeyStatus.ACTIVE)),
    ("POST", ("keys", "*", "rotate"), rotate_key),
    ("GET", ("tenants",), list_tenants),
    ("GET", ("tenants", "*"), show_tenant),
    ("PUT", ("tenants", "*"), put_tenant),
    ("DELETE", ("tenants", "*"), delete_tenant),
    ("GET", ("spend",), spend),
]

"""Virtual keys and tenants in the log database (SQLite or PostgreSQL), as SQLAlchemy Core.

The CLI and the admin API write here; every gateway process reads here through its ``KeyCache``.
Nothing here runs on the request path except ``by_hash`` for a key the cache has not seen.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from sqlalchemy import Row, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..limits.rules import Action, BudgetRule, Limits, Period
from ..store.tables import api_keys, tenants
from . import secret
from .key import KeyStatus, Tenant, VirtualKey
from .spec import KeySpec


class NotFound(LookupError):
    pass


class Conflict(ValueError):
    pass


def _limits(row: Mapping[str, Any]) -> Limits:
    budget = None
    if row["budget"] is not None:
        budget = BudgetRule(float(row["budget"]), Period(row["budget_period"] or "month"),
                            Action(row["budget_action"] or "block"))
    return Limits(row["rpm"], row["tpm"], row["concurrency"], budget)


def _limit_columns(limits: Limits) -> dict[str, Any]:
    b = limits.budget
    return {"rpm": limits.rpm, "tpm": limits.tpm, "concurrency": limits.concurrency,
            "budget": None if b is None else b.amount, "budget_period": None if b is None else b.period.value,
            "budget_action": None if b is None else b.action.value}


def key_from_row(row: Row[Any] | Mapping[str, Any]) -> VirtualKey:
    m: Mapping[str, Any] = row._mapping if isinstance(row, Row) else row  # type: ignore[assignment]
    return VirtualKey(
        id=m["id"], name=m["name"], tenant=m["tenant"], key_hash=m["key_hash"], hint=m["hint"],
        models=tuple(orjson.loads(m["models"])), limits=_limits(m), expires_at=m["expires_at"],
        status=KeyStatus(m["status"]), created_at=m["created_at"], updated_at=m["updated_at"],
        cache=m["cache"] is None or bool(m["cache"]),  # NULL: a key from before migration 4 (cached)
    )


def tenant_from_row(row: Row[Any]) -> Tenant:
    m: Mapping[str, Any] = row._mapping  # type: ignore[assignment]
    return Tenant(m["name"], _limits(m), m["created_at"], m["updated_at"])


class KeyRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- keys -------------------------------------------------------------------------------------

    async def create(self, spec: KeySpec) -> tuple[VirtualKey, str]:
        """Store a new key; returns it and its secret, which exists nowhere else from now on."""
        plaintext = secret.generate()
        now = time.time()
        values = {
            "id": "key_" + secrets.token_hex(8), "name": spec.name, "tenant": spec.tenant,
            "key_hash": secret.digest(plaintext), "hint": secret.hint(plaintext),
            "models": orjson.dumps(list(spec.models)).decode(), **_limit_columns(spec.limits),
            "expires_at": spec.expires_at, "status": KeyStatus.ACTIVE.value, "created_at": now, "updated_at": now,
            "cache": spec.cache,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(api_keys).values(**values))
        except IntegrityError:
            raise Conflict(f"a key named {spec.name!r} already exists") from None
        return key_from_row(values), plaintext

    async def get(self, ref: str, *, deleted: bool = False) -> VirtualKey:
        """A key by id or by name (names are unique among keys not deleted)."""
        condition = or_(api_keys.c.id == ref, api_keys.c.name == ref)
        statement = select(api_keys).where(condition)
        if not deleted:
            statement = statement.where(api_keys.c.status != KeyStatus.DELETED.value)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement.order_by(api_keys.c.created_at.desc()))).all()
        if not rows:
            raise NotFound(f"no key with id or name {ref!r}")
        exact = [r for r in rows if r._mapping["id"] == ref]
        return key_from_row(exact[0] if exact else rows[0])

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
        return None if row is None else key_from_row(row)

    async def list_keys(self, *, deleted: bool = False, tenant: str | None = None) -> list[VirtualKey]:
        statement = select(api_keys)
        if not deleted:
            statement = statement.where(api_keys.c.status != KeyStatus.DELETED.value)
        if tenant is not None:
            statement = statement.where(api_keys.c.tenant == tenant)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement.order_by(api_keys.c.created_at))).all()
        return [key_from_row(r) for r in rows]

    async def changed_since(self, since: float) -> list[VirtualKey]:
        """Every key (deleted ones too) written at or after ``since``; all of them for ``since=0``."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(api_keys).where(api_keys.c.updated_at >= since))).all()
        return [key_from_row(r) for r in rows]

    async def any_created(self) -> bool:
        """Whether a key was ever created (deleted keys count: deleting the last key must not open
        the gateway)."""
        async with self._engine.connect() as conn:
            return (await conn.execute(select(api_keys.c.id).limit(1))).first() is not None

    async def update(self, ref: str, changes: dict[str, Any]) -> VirtualKey:
        """Apply column changes (already validated) to a live key."""
        key = await self.get(ref)
        values = {**changes, "updated_at": max(time.time(), key.updated_at + 1e-6)}
        if "models" in values:
            values["models"] = orjson.dumps(list(values["models"])).decode()
        if "limits" in values:
            values.update(_limit_columns(values.pop("limits")))
        async with self._engine.begin() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.id == key.id).values(**values))
        return await self.get(key.id, deleted=True)

    async def set_status(self, ref: str, status: KeyStatus) -> VirtualKey:
        return await self.update(ref, {"status": status.value})

    async def rotate(self, ref: str) -> tuple[VirtualKey, str]:
        """A new secret for the same key (same id, name, limits and spend); the old one stops working."""
        plaintext = secret.generate()
        key = await self.update(ref, {"key_hash": secret.digest(plaintext), "hint": secret.hint(plaintext)})
        return key, plaintext

    async def names(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(ids) - {""})
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(api_keys.c.id, api_keys.c.name).where(api_keys.c.id.in_(wanted))))
            return {r.id: r.name for r in rows}

    # -- tenants ----------------------------------------------------------------------------------

    async def put_tenant(self, name: str, limits: Limits) -> Tenant:
        now = time.time()
        columns = _limit_columns(limits)
        async with self._engine.begin() as conn:
            result = await conn.execute(update(tenants).where(tenants.c.name == name)
                                        .values(**columns, updated_at=now))
            if result.rowcount == 0:
                await conn.execute(insert(tenants).values(name=name, **columns, created_at=now, updated_at=now))
        return await self.tenant(name)

    async def tenant(self, name: str) -> Tenant:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.name == name))).first()
        if row is None:
            raise NotFound(f"no tenant named {name!r}")
        return tenant_from_row(row)

    async def tenants(self) -> list[Tenant]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(tenants).order_by(tenants.c.name))).all()
        return [tenant_from_row(r) for r in rows]

    async def delete_tenant(self, name: str) -> None:
        """Remove a tenant's limits. Its keys keep the tenant label (and are grouped by it in reports)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(tenants).where(tenants.c.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no tenant named {name!r}")

    async def tenant_key_counts(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(api_keys.c.tenant, func.count()).where(api_keys.c.status != KeyStatus.DELETED.value)
                .group_by(api_keys.c.tenant))
            return {str(r[0]): int(r[1]) for r in rows}

"""Virtual keys and tenants in the log database (SQLite or PostgreSQL), in plain SQL.

The CLI and the admin API write here; every gateway process reads here through its ``KeyCache``.
Nothing here runs on the request path except ``by_hash`` for a key the cache has not seen.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..errors import NameTaken, RecordNotFound, StoreConflict
from ..limits.rules import Action, BudgetRule, Limits, Period
from ..store.sql import Database, Session, insert_sql
from ..store.tables import API_KEYS, API_KEYS_COLUMNS, TENANTS, TENANTS_COLUMNS
from . import secret
from .key import KeyStatus, Tenant, VirtualKey
from .spec import KeySpec


def _limits(row: Mapping[str, Any]) -> Limits:
    budget = None
    if row["budget"] is not None:
        budget = BudgetRule(
            float(row["budget"]),
            Period(row["budget_period"] or "month"),
            Action(row["budget_action"] or "block"),
        )
    return Limits(row["rpm"], row["tpm"], row["concurrency"], budget)


def _limit_columns(limits: Limits) -> dict[str, Any]:
    b = limits.budget
    return {
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "concurrency": limits.concurrency,
        "budget": None if b is None else b.amount,
        "budget_period": None if b is None else b.period.value,
        "budget_action": None if b is None else b.action.value,
    }


def key_from_row(m: Mapping[str, Any]) -> VirtualKey:
    return VirtualKey(
        id=m["id"],
        name=m["name"],
        tenant=m["tenant"],
        key_hash=m["key_hash"],
        hint=m["hint"],
        models=tuple(orjson.loads(m["models"])),
        limits=_limits(m),
        expires_at=m["expires_at"],
        status=KeyStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        cache=m["cache"] is None or bool(m["cache"]),  # NULL: a key from before migration 4 (cached)
    )


def tenant_from_row(m: Mapping[str, Any]) -> Tenant:
    return Tenant(m["name"], _limits(m), m["created_at"], m["updated_at"])


_KEYS = f"SELECT {', '.join(API_KEYS_COLUMNS)} FROM {API_KEYS}"
_TENANTS = f"SELECT {', '.join(TENANTS_COLUMNS)} FROM {TENANTS}"
_LIVE = "status <> 'deleted'"


def _insert(session: Session, table: str, values: Mapping[str, Any]) -> Any:
    return session.execute(insert_sql(table, list(values)), *values.values())


def _assignments(values: Mapping[str, Any]) -> str:
    # column names come from this module and spec validation, never from a client as such
    return ", ".join(f"{name} = ?" for name in values)


class KeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- keys -------------------------------------------------------------------------------------

    async def create(self, spec: KeySpec) -> tuple[VirtualKey, str]:
        """Store a new key; returns it and its secret, which exists nowhere else from now on."""
        plaintext = secret.generate()
        now = time.time()
        values = {
            "id": "key_" + secrets.token_hex(8),
            "name": spec.name,
            "tenant": spec.tenant,
            "key_hash": secret.digest(plaintext),
            "hint": secret.hint(plaintext),
            "models": orjson.dumps(list(spec.models)).decode(),
            **_limit_columns(spec.limits),
            "expires_at": spec.expires_at,
            "status": KeyStatus.ACTIVE.value,
            "created_at": now,
            "updated_at": now,
            "cache": spec.cache,
        }
        try:
            await _insert(self._db, API_KEYS, values)
        except StoreConflict:
            raise NameTaken(f"a key named {spec.name!r} already exists") from None
        return key_from_row(values), plaintext

    async def get(self, ref: str, *, deleted: bool = False) -> VirtualKey:
        """A key by id or by name (names are unique among keys not deleted)."""
        live = "" if deleted else f" AND {_LIVE}"
        rows = await self._db.fetch(
            f"{_KEYS} WHERE (id = ? OR name = ?){live} ORDER BY created_at DESC", ref, ref
        )
        if not rows:
            raise RecordNotFound(f"no key with id or name {ref!r}")
        exact = [r for r in rows if r["id"] == ref]
        return key_from_row(exact[0] if exact else rows[0])

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        row = await self._db.fetch_one(f"{_KEYS} WHERE key_hash = ?", key_hash)
        return None if row is None else key_from_row(row)

    async def list_keys(self, *, deleted: bool = False, tenant: str | None = None) -> list[VirtualKey]:
        conditions, params = ([] if deleted else [_LIVE]), []
        if tenant is not None:
            conditions.append("tenant = ?")
            params.append(tenant)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._db.fetch(f"{_KEYS}{where} ORDER BY created_at", *params)
        return [key_from_row(r) for r in rows]

    async def changed_since(self, since: float) -> list[VirtualKey]:
        """Every key (deleted ones too) written at or after ``since``; all of them for ``since=0``."""
        rows = await self._db.fetch(f"{_KEYS} WHERE updated_at >= ?", float(since))
        return [key_from_row(r) for r in rows]

    async def any_created(self) -> bool:
        """Whether a key was ever created (deleted keys count: deleting the last key must not open
        the gateway)."""
        return await self._db.fetch_one(f"SELECT id FROM {API_KEYS} LIMIT 1") is not None

    async def update(self, ref: str, changes: dict[str, Any]) -> VirtualKey:
        """Apply column changes (already validated) to a live key."""
        key = await self.get(ref)
        values = {**changes, "updated_at": max(time.time(), key.updated_at + 1e-6)}
        if "models" in values:
            values["models"] = orjson.dumps(list(values["models"])).decode()
        if "limits" in values:
            values.update(_limit_columns(values.pop("limits")))
        unknown = set(values) - set(API_KEYS_COLUMNS)
        if unknown:
            raise ValueError(f"not key columns: {sorted(unknown)}")
        await self._db.execute(
            f"UPDATE {API_KEYS} SET {_assignments(values)} WHERE id = ?", *values.values(), key.id
        )
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
        marks = ", ".join("?" for _ in wanted)
        rows = await self._db.fetch(f"SELECT id, name FROM {API_KEYS} WHERE id IN ({marks})", *wanted)
        return {r["id"]: r["name"] for r in rows}

    # -- tenants ----------------------------------------------------------------------------------

    async def put_tenant(self, name: str, limits: Limits) -> Tenant:
        now = time.time()
        columns = _limit_columns(limits)
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE {TENANTS} SET {_assignments(columns)}, updated_at = ? WHERE name = ?",
                *columns.values(),
                now,
                name,
            )
            if changed == 0:
                await _insert(tx, TENANTS, {"name": name, **columns, "created_at": now, "updated_at": now})
        return await self.tenant(name)

    async def tenant(self, name: str) -> Tenant:
        row = await self._db.fetch_one(f"{_TENANTS} WHERE name = ?", name)
        if row is None:
            raise RecordNotFound(f"no tenant named {name!r}")
        return tenant_from_row(row)

    async def tenants(self) -> list[Tenant]:
        return [tenant_from_row(r) for r in await self._db.fetch(f"{_TENANTS} ORDER BY name")]

    async def delete_tenant(self, name: str) -> None:
        """Remove a tenant's limits. Its keys keep the tenant label (and are grouped by it in reports)."""
        if await self._db.execute(f"DELETE FROM {TENANTS} WHERE name = ?", name) == 0:
            raise RecordNotFound(f"no tenant named {name!r}")

    async def tenant_key_counts(self) -> dict[str, int]:
        rows = await self._db.fetch(
            f"SELECT tenant, count(*) AS n FROM {API_KEYS} WHERE {_LIVE} GROUP BY tenant"
        )
        return {str(r["tenant"]): int(r["n"]) for r in rows}

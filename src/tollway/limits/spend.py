"""Spend already recorded in the request log: how a budget's counter starts (after a restart, a
Redis flush, or at its first use), so spend survives everything but the log itself."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.tables import requests


async def spent_since(engine: AsyncEngine, scope: str, name: str, since: float) -> float:
    """US dollars recorded since ``since`` for one key id (scope "key"), one tenant, or everything."""
    statement = select(func.coalesce(func.sum(requests.c.cost), 0.0)).where(requests.c.ts >= since)
    if scope == "key":
        statement = statement.where(requests.c.key_id == name)
    elif scope == "tenant":
        statement = statement.where(requests.c.tenant == name)
    async with engine.connect() as conn:
        return float((await conn.execute(statement)).scalar_one())

"""``GET /stats``: requests, cache hits by kind and money saved, from the request log (so every
gateway process sharing a log reports the same totals), plus this process's cache state.

``?period=today`` (the default), ``week``, ``month``, ``all``, or a duration such as ``24h`` / ``7d``,
on the calendar of ``budgets.timezone`` (as ``/admin/spend`` and ``tollway spend``).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from ..asgi import Receive, Scope, Send, respond_json
from ..errors import InvalidRequest
from ..limits.period import start_of
from ..runtime import Runtime

HIT_KINDS = ("hit", "semantic", "dedup")


async def stats(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    params = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    period = params.get("period", ["today"])[0]
    try:
        since = start_of(period, ZoneInfo(rt.config.budgets.timezone), time.time())
    except ValueError as exc:
        err = InvalidRequest(str(exc), param="period")
        await respond_json(send, err.status, err.openai_envelope())
        return
    rows = await rt.store.cache_summary(since=since)
    by_status = {
        r.status or "none": {
            "requests": r.requests,
            "cost_usd": round(r.cost, 10),
            "saved_usd": round(r.saved, 10),
        }
        for r in rows
    }
    payload = {
        "period": period,
        "since": since,
        "requests": sum(r.requests for r in rows),
        "hits": {kind: by_status.get(kind, {}).get("requests", 0) for kind in HIT_KINDS},
        "misses": by_status.get("miss", {}).get("requests", 0),
        "bypassed": by_status.get("bypass", {}).get("requests", 0),
        "cost_usd": round(sum(r.cost for r in rows), 10),
        "saved_usd": round(sum(r.saved for r in rows), 10),
        "saved_by": {kind: by_status.get(kind, {}).get("saved_usd", 0.0) for kind in HIT_KINDS},
        "by_status": by_status,
        "cache": {**await rt.cache.stats(), "in_flight": len(rt.flights)},
    }
    await respond_json(send, 200, payload)

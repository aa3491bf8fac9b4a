"""Operational endpoints: ``/health`` and ``/v1/backends``."""

from __future__ import annotations

import time
from collections import Counter

from ..asgi import Receive, Scope, Send, respond_json
from ..runtime import Runtime


async def health(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    states = Counter(d.state.value for d in rt.router.deployments())
    writer = rt.writer
    limits = rt.limits.health()
    payload = {
        # degraded: serving, but a limits backend is unreachable (its policy decides what passes)
        "status": "degraded" if limits["state"] != "ok" else "ok",
        "uptime_s": round(time.time() - rt.started_at, 3),
        "deployments": {"healthy": states["healthy"], "degraded": states["degraded"], "down": states["down"]},
        "log": {"written": writer.written, "pending": writer.pending, "dropped": writer.dropped},
        "auth": "open" if rt.keys.open else "keys",
        "limits": limits,
    }
    await respond_json(send, 200, payload)


async def backends(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    await respond_json(send, 200, {"object": "list", "data": [d.snapshot() for d in rt.router.deployments()]})

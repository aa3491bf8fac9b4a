"""One client call, top to bottom. Each numbered stage lives in its own module.

    1 authenticate   keys      (the virtual-keys issue)
    2 admit          limits    (the rate-limit and budget issue)
    3 look up        cache     (the cache issue)
    4 join           dedup     (the cache issue)
    5 route          routing.Router.candidates
    6 call           failover.complete / failover.stream
    7 account        accounting.account (usage → cost)
    8 record         accounting.record (one log row, enqueued)
"""

from __future__ import annotations

import asyncio

from . import failover
from .accounting import account, record
from .call import Call
from .egress import Responder
from .errors import TollwayError
from .runtime import Runtime


async def handle(rt: Runtime, call: Call, out: Responder) -> None:
    body: bytes | None = None
    try:
        candidates = rt.router.candidates(call.model)
        if call.stream:
            await failover.stream(rt, call, candidates, out)
        else:
            reply = await failover.complete(rt, call, candidates)
            account(rt, call, reply.usage)
            call.status = 200
            body = reply.body
            await out.reply(call, reply)
    except TollwayError as exc:
        call.status, call.error_type = exc.status, exc.error_type
        await out.error(call, exc)
    except asyncio.CancelledError:
        if call.status != 200:
            call.status, call.error_type = 499, "client_disconnected"
        raise
    finally:
        record(rt, call, body)

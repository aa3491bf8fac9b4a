"""One client call, top to bottom. Each numbered stage lives in its own module.

1 authenticate   keys.authenticate (virtual key → Principal; 401/403)
2 admit          Limiter.admit (rate limits + budget reservation; 429/503), settled by
                 Limiter.settle in ``finally`` once stage 7 has set ``call.cost``
3 look up        cache.look_up (exact key, then a paraphrase; a hit answers here)
4 join           dedup.join (identical calls in flight share one upstream call, which
                 runs stages 5-7 in a task of its own and fills the cache)
5 route          routing.Router.candidates
6 call           failover.complete / failover.stream
7 price          accounting.finish (usage → cost), the one exit of every call, which also
8 emit           settles the outcome and hands one CallFinished to the sinks (the log first)
"""

from __future__ import annotations

import asyncio

from . import dedup, failover
from .accounting import finish
from .cache.lookup import look_up, look_up_now
from .call import Call
from .egress import Responder
from .errors import ClientDisconnected, TollwayError
from .keys import auth
from .limits import Ticket
from .runtime import Runtime

CLIENT_GONE = ClientDisconnected("the client went away before its answer was complete")


async def handle(rt: Runtime, call: Call, out: Responder) -> None:
    # Stages that usually need no I/O (a key in memory, no limits, a call the cache bypasses) are
    # answered by their synchronous half first: each awaited stage costs a coroutine per request.
    # Each synchronous half hands on what it computed (the key's digest, the cache key).
    body: bytes | None = None
    ticket: Ticket | None = None
    limits = rt.limits
    try:
        principal = auth.known(rt, call)
        if isinstance(principal, str):  # the key's digest: not in memory, ask the database
            principal = await auth.look_up(rt, call, principal)
        # before admit: the reservation is priced on them
        candidates = rt.router.candidates(call.model, call.endpoint)
        if limits.applies(principal):
            ticket = await limits.admit(call, principal, candidates)
        lookup = look_up_now(rt, call)
        if lookup.consult:
            lookup = await look_up(rt, call, out, lookup)
        if lookup.answered:
            return
        if lookup.key is not None:
            body = await dedup.join(rt, call, lookup, candidates, out)
        elif call.stream:
            await failover.stream(rt, call, candidates, out)
        else:
            reply = await failover.complete(rt, call, candidates)
            call.usage = reply.usage
            body = reply.body
            await out.reply(call, reply)
    except TollwayError as exc:
        call.failure = exc
        await out.error(call, exc)
    except asyncio.CancelledError:
        if call.failure is None:
            call.failure = CLIENT_GONE
        raise
    finally:
        finish(rt, call, body)
        if ticket is not None:
            await limits.settle(call, ticket)

"""One client call, top to bottom: the stages in the order ``handle`` runs them.

1 authenticate   keys.auth.known / look_up (virtual key → Principal; 401/403)
2 route          routing.Router.candidates (model → deployments; 404, or 400 when none can serve
                 the endpoint) — before admit, whose budget reservation is priced on them
3 admit          Limiter.admit (rate limits + budget reservation; 429/503)
4 look up        cache.lookup.look_up_now / look_up (exact key, then a paraphrase; a hit ends here)
5 join           dedup.join (identical calls in flight share one upstream call: stage 6 runs once,
                 in a Flight, and fills the cache)
6 call           failover.complete / failover.stream (deployments in order → providers)
7 price          accounting.finish, the one exit of every call: usage → cost,
8 emit           the outcome, and one CallFinished to the sinks (the log first)
  settle         Limiter.settle, after finish (``call.cost`` is final): reservations become real
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

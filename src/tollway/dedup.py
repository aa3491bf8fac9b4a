"""Stage 5: join. Identical calls in flight at once (same cache key) make one upstream call.

The first such call opens a ``Flight``, which runs stage 6 (call with failover) on the routed
candidates and prices the answer, into a ``cache.recording.Recording`` — in a task of its own when
that first call streams, in the first caller's own task when it does not (a body's client is never
cancelled by a disconnect, so there is nothing to protect the others from, and no task to pay for).
Every client — the first one included — is a reader of that recording: a streaming client gets the
events so far, then the live ones, then ``[DONE]``; a non-streaming one gets the whole answer. The
two kinds mix freely (a stream is reassembled into one body, a body is replayed as a synthesized
stream). Because the upstream call belongs to the flight and not to any one client, a client that
goes away takes nothing from the others; only when the last reader has gone does the flight stop,
cancelling the upstream call as a lone client's disconnect always did.

Billing: one upstream call, one paying row. The payer is the first reader (in order of arrival)
still connected when the answer completed — normally the call that opened the flight — and its log
row carries the usage and cost (status ``miss``). Every other reader's row says ``dedup``, costs 0
and records the payer's cost as ``saved_cost``. A flight stopped because everyone left is paid by the
last reader to leave (the partial, estimated usage, as for any broken-off stream).

Failure: if the upstream call fails, every reader gets the same error — failover already tried every
deployment for it, and retrying the same request at once from each reader would only multiply the
load on a struggling upstream. A stream that breaks after its first event ends with the same error
event for every streaming reader.

A clean, cacheable answer is stored before readers are told it is complete, so a client that has
its answer finds it in the cache on its next call, through any process sharing the cache.

Scope: one process. Identical calls arriving at different processes are not joined; the shared
cache answers the later ones once the first has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from . import failover
from .accounting import price
from .cache.entry import Entry
from .cache.lookup import Lookup, set_status
from .cache.policy import cacheable
from .cache.recording import Recording
from .cache.replay import send_answer
from .call import Call, Endpoint
from .egress import Responder
from .errors import StreamInterrupted, TollwayError

if TYPE_CHECKING:
    from .routing.health import Deployment
    from .runtime import Runtime

log = logging.getLogger("tollway.dedup")


class Flights(dict[str, "Flight"]):
    """The calls in flight that identical calls may join, by cache key digest: dedup's own registry
    (``Runtime.flights``). A plain dict underneath: looked up on every cacheable miss."""


async def join(
    rt: Runtime, call: Call, lookup: Lookup, candidates: list[Deployment], out: Responder
) -> bytes | None:
    """Answer ``call`` through a shared flight; returns the body sent to a non-streaming client."""
    assert lookup.key is not None
    flights = rt.flights
    share = rt.cache.config.dedup
    flight = flights.get(lookup.key.digest) if share and lookup.join else None
    if flight is None:
        flight = Flight(rt, call, candidates, lookup)
        if share and lookup.key.digest not in flights:
            flights[lookup.key.digest] = flight
            flight.registered = True
        if call.cache_status == "miss":
            set_status(call, "miss")
    else:
        set_status(call, "dedup")
    return await flight.follow(call, out)


class Flight:
    def __init__(self, rt: Runtime, lead: Call, candidates: list[Deployment], lookup: Lookup) -> None:
        assert lookup.key is not None
        self.rt = rt
        # the upstream call's own record (dataclasses.replace costs more than the rest of a miss)
        self.call = Call(
            lead.request_id,
            lead.protocol,
            lead.endpoint,
            lead.body,
            lead.model,
            lead.stream,
            lead.started,
            lead.received_at,
            api_key=lead.api_key,  # its embedding, if any, is made on the lead's behalf (internal.py)
            key_id=lead.key_id,
            tenant=lead.tenant,
        )
        self.candidates = candidates
        self.key = lookup.key
        self.vector = lookup.vector
        self.recording = Recording(
            stream=lead.stream,
            chat=lead.endpoint is Endpoint.CHAT,
            codec=lead.protocol.codec(model=lead.model, request_id=lead.request_id),
        )
        self.readers: list[Call] = []
        self.payer: Call | None = None
        self.registered = False
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._finished = False  # the upstream call is over (answered, failed or cancelled)
        self._stored = False

    # -- the upstream call ------------------------------------------------------------------------

    async def _run(self) -> None:
        rt, call, rec = self.rt, self.call, self.recording
        try:
            if call.stream:
                await failover.stream(rt, call, self.candidates, rec)
            else:
                reply = await failover.complete(rt, call, self.candidates)
                call.usage = reply.usage
                await rec.reply(call, reply)
        except TollwayError as exc:
            rec.fail(exc)
        except asyncio.CancelledError:
            price(rt, call)  # what arrived before everyone left: the last reader to leave pays it
            self._finished = True
            rec.cancel()
            self._unregister()
            raise
        except Exception as exc:  # a bug must not leave readers waiting forever
            log.exception("shared call failed")
            rec.fail(TollwayError(f"Internal error: {type(exc).__name__}"))
        # priced once, here: the payer's row carries the cost, every other reader's its saving (the
        # flight's own call is never finished: its readers are)
        price(rt, call)
        self._finished = True
        self.payer = self.readers[0] if self.readers else None
        if rec.usage is None:
            rec.usage = call.usage  # a stream's usage, for the reassembled answer
        if rec.complete and rec.failure is None:
            await self._store()
        rec.finish(call.usage)
        self._unregister()
        semantic = rt.cache.semantic
        if semantic is not None and rec.complete and rec.failure is None and self._stored:
            try:
                await semantic.add(rt, self.key, self.vector, call)
            except Exception:
                log.exception("semantic cache: indexing failed")

    async def _store(self) -> None:
        cache, call = self.rt.cache, self.call
        try:
            body, completion = self.recording.answer()
        except StreamInterrupted:
            return
        if self.recording.chat and (completion is None or not cacheable(completion)):
            return
        usage = call.usage
        await cache.put(
            self.key.digest,
            Entry(
                body,
                call.tenant,
                call.provider,
                call.upstream_model,
                call.cost,
                usage.input_tokens if usage else 0,
                usage.output_tokens if usage else 0,
            ),
        )
        self._stored = True

    def _unregister(self) -> None:
        flights = self.rt.flights
        if self.registered and flights.get(self.key.digest) is self:
            del flights[self.key.digest]

    # -- the readers ------------------------------------------------------------------------------

    async def follow(self, call: Call, out: Responder) -> bytes | None:
        self.readers.append(call)
        if not self._started:
            self._started = True
            if call.stream:
                self._task = asyncio.create_task(self._run())
            else:
                # A body's client is never cancelled when it goes away (only streams are watched),
                # so the first caller's own task can make the call: no task to create, no hop.
                await self._run()
        finished = False
        try:
            body = await self._deliver(call, out)
            finished = True
            return body
        finally:
            await self._leave(call, finished)

    def _route(self, call: Call) -> None:
        call.provider, call.upstream_model = self.call.provider, self.call.upstream_model
        call.attempts = self.call.attempts if call.cache_status != "dedup" else 0

    async def _deliver(self, call: Call, out: Responder) -> bytes | None:
        rec = self.recording
        if rec.stream and call.stream:
            await self._relay(call, out)
            return None
        await rec.wait_done()
        self._route(call)
        if rec.failure is not None:
            raise rec.failure
        body, completion = rec.answer()
        await send_answer(call, out, body, completion, rec.codec)
        return body

    async def _relay(self, call: Call, out: Responder) -> None:
        rec = self.recording
        await rec.wait_started()
        self._route(call)
        if not rec.started:
            raise rec.failure or StreamInterrupted("The shared call ended without an answer.")
        await out.start_stream(call)
        usage = call.protocol.wants_usage(call.body)
        sent = 0
        while True:
            events = rec.events
            while sent < len(events):
                event = events[sent]
                sent += 1
                if event.usage_only and not usage:
                    continue
                await out.chunk(event.data)
                if call.ttft_ms is None:
                    call.ttft_ms = call.elapsed_ms()
            if rec.done:
                break
            await rec.wait(sent)
        if rec.failure is not None:
            call.failure = rec.failure
            await out.stream_error(call, rec.failure)
            return
        if usage and not rec.saw_usage and rec.codec.usage_apart:
            with contextlib.suppress(StreamInterrupted):
                _, completion = rec.answer()
                late = rec.codec.late_usage(completion) if completion is not None else b""
                if late:
                    await out.chunk(late)
        if rec.codec.tail:
            await out.chunk(rec.codec.tail)
        await out.end_stream()

    async def _leave(self, call: Call, finished: bool) -> None:
        if call in self.readers:
            self.readers.remove(call)
        task = self._task
        if task is not None and not self._finished and not self.readers and not finished:
            # the last reader went away before the answer was complete: stop paying for it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            self._bill(call)
        elif call is self.payer:
            self._bill(call)
        else:
            self._share(call)

    def _bill(self, call: Call) -> None:
        f = self.call
        call.provider, call.upstream_model, call.attempts = f.provider, f.upstream_model, f.attempts
        call.usage, call.cost = f.usage, f.cost
        if call.cache_status == "dedup":
            call.cache_status = "miss"  # it took over paying from a reader that left
        if call.cache_status == "miss":
            self.rt.cache.count("miss")

    def _share(self, call: Call) -> None:
        call.cost = 0.0
        call.saved_cost = self.call.cost if self._finished and call.cache_status == "dedup" else None
        if call.cache_status in ("miss", "dedup"):
            self.rt.cache.count(call.cache_status, call.saved_cost)

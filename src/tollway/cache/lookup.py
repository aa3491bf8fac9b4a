"""Stage 4: look up. Answer from the cache — the exact key first, then (when enabled) a paraphrase
of the last user message within the same conversation — or say how the call may fill the cache.

Every answer carries ``x-tollway-cache``: ``hit`` (exact), ``semantic`` (with
``x-tollway-cache-similarity``), ``dedup`` (shared an identical call in flight, see ``dedup``),
``miss`` (looked up, not found: this call's answer is stored) or ``bypass`` (not looked up: caching
is off for this model or key, the temperature policy skips it, or the client sent
``Cache-Control: no-cache`` / ``no-store``). A hit costs nothing; its log row records what the
original call cost as ``saved_cost``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..call import Call
from ..egress import Responder
from .entry import Entry
from .key import CacheKey, request_key
from .policy import BYPASS
from .replay import send_answer

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .answers import AnswerCache

HEADER = b"x-tollway-cache"
SIMILARITY_HEADER = b"x-tollway-cache-similarity"


@dataclass(slots=True)
class Lookup:
    answered: bool = False  # the cache answered; nothing else to do
    key: CacheKey | None = None  # set when this call's answer may be stored (and shared)
    join: bool = False  # it may also join an identical call already in flight
    vector: Any = None  # the last user message's embedding, computed by the semantic lookup
    consult: bool = False  # look_up_now's answer: the store is to be consulted (look_up), under ``key``


NOT_CACHED = Lookup()
ANSWERED = Lookup(answered=True)


_BYPASS = (HEADER, b"bypass")


def set_status(call: Call, status: str) -> None:
    call.cache_status = status
    call.extra_headers.append((HEADER, status.encode()))


def _bypass(cache: AnswerCache, call: Call) -> None:
    call.cache_status = "bypass"
    call.extra_headers.append(_BYPASS)
    cache.count("bypass")


def look_up_now(rt: Runtime, call: Call) -> Lookup:
    """``look_up`` as far as it needs no I/O: the policy's decision and the key. A call the cache must
    not answer (bypass) gets its final ``Lookup`` here; one to look up gets ``consult`` set, with the
    key already computed, for ``look_up`` to continue from."""
    cache = rt.cache
    decision = cache.policy.decide(call)
    if decision is BYPASS:  # the usual case, first: neither looked up nor stored (_bypass, inlined)
        call.cache_status = "bypass"
        call.extra_headers.append(_BYPASS)
        cache.count("bypass")
        return NOT_CACHED
    if not decision.active:
        _bypass(cache, call)
        return NOT_CACHED
    key = request_key(call, semantic=decision.semantic and cache.semantic is not None)
    if not decision.lookup:
        _bypass(cache, call)
        return Lookup(key=key)
    return Lookup(key=key, join=True, consult=True)


async def look_up(rt: Runtime, call: Call, out: Responder, pending: Lookup | None = None) -> Lookup:
    """Stage 4. ``pending``: what ``look_up_now`` returned for this call, when it was called first."""
    if pending is None:
        pending = look_up_now(rt, call)
    key = pending.key
    if not pending.consult or key is None:
        return pending
    pending.consult = False
    cache = rt.cache
    entry = await cache.get(key.digest)
    if entry is not None and entry.tenant == call.tenant:
        await _serve(rt, call, out, entry, "hit")
        return ANSWERED
    # An identical call in flight answers sooner than an embedding: join it (stage 5) without one.
    if key.group is not None and cache.semantic is not None and key.digest not in rt.flights:
        match, pending.vector = await cache.semantic.find(rt, key, call)
        if match is not None:
            entry = await cache.get(match.digest)
            if entry is not None and entry.tenant == call.tenant:
                call.extra_headers.append((SIMILARITY_HEADER, f"{match.similarity:.3f}".encode()))
                await _serve(rt, call, out, entry, "semantic")
                return ANSWERED
            cache.semantic.forget(key, match.digest)  # its answer expired or was evicted
    call.cache_status = "miss"  # dedup.join sends the header: this call may yet join another
    return pending


async def _serve(rt: Runtime, call: Call, out: Responder, entry: Entry, status: str) -> None:
    set_status(call, status)
    call.provider, call.upstream_model = entry.provider, entry.upstream_model
    call.cost, call.saved_cost = 0.0, entry.cost
    await send_answer(call, out, entry.body, None)
    rt.cache.count(status, entry.cost)

"""Stage 6: call the candidate deployments in order until one answers.

Connection failures, timeouts, 429 and 5xx move on to the next deployment (an upstream
``Retry-After`` takes that deployment out of rotation for that long); other 4xx answers are the
client's problem and are returned at once. A stream fails over transparently until its first event
reaches the client; after that a failure ends the stream with an explicit error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from .accounting import account
from .call import Call, Endpoint
from .egress import Responder
from .errors import NoHealthyUpstream, StreamInterrupted, TollwayError, UpstreamsExhausted
from .pool import Deployment, order
from .providers.base import Reply
from .runtime import Runtime
from .translate.errors import TranslationError


def _usable(call: Call, candidates: list[Deployment]) -> list[Deployment]:
    usable = order(candidates)
    if not usable:
        err = NoHealthyUpstream(f"Every deployment of '{call.model}' is failing; retry shortly.")
        err.retry_after = min(d.seconds_until_available() for d in candidates) if candidates else None
        raise err
    return usable


def _exhausted(call: Call, last: TollwayError | None) -> TollwayError:
    if isinstance(last, TranslationError):
        return last  # the last candidate cannot express the request: the client's 400, as it is
    detail = f" Last error: {last.message}" if last is not None else ""
    return UpstreamsExhausted(f"All {call.attempts} attempt(s) for '{call.model}' failed.{detail}",
                              last=last, attempts=call.attempts)


def _on_failure(rt: Runtime, dep: Deployment, exc: TollwayError) -> None:
    retry_after = exc.retry_after
    if retry_after is not None:
        retry_after = min(retry_after, rt.config.failover.max_retry_after)
    dep.fail(exc.message, retry_after=retry_after)


async def complete(rt: Runtime, call: Call, candidates: list[Deployment]) -> Reply:
    last: TollwayError | None = None
    for dep in _usable(call, candidates)[: rt.config.failover.max_attempts]:
        call.attempts += 1
        call.provider, call.upstream_model = dep.provider.name, dep.upstream_model
        dep.begin()
        started = time.perf_counter()
        try:
            if call.endpoint is Endpoint.EMBEDDINGS:
                reply = await dep.upstream.embed(call, dep)
            else:
                reply = await dep.upstream.complete(call, dep)
        except TranslationError as exc:
            dep.release()  # this deployment's protocol cannot express the request; another may
            last = exc
            continue
        except TollwayError as exc:
            if not exc.retryable:
                dep.release()
                raise
            _on_failure(rt, dep, exc)
            last = exc
            continue
        except BaseException:
            dep.release()
            raise
        dep.succeed((time.perf_counter() - started) * 1000.0)
        return reply
    raise _exhausted(call, last)


async def stream(rt: Runtime, call: Call, candidates: list[Deployment], out: Responder) -> None:
    last: TollwayError | None = None
    for dep in _usable(call, candidates)[: rt.config.failover.max_attempts]:
        call.attempts += 1
        call.provider, call.upstream_model = dep.provider.name, dep.upstream_model
        dep.begin()
        started = time.perf_counter()
        pieces: AsyncIterator[bytes] | None = None
        try:
            upstream = await dep.upstream.stream(call, dep)
            pieces = aiter(upstream)
            first = await anext(pieces)
        except StopAsyncIteration:
            last = StreamInterrupted(f"{dep.provider.name}: the stream ended before any event")
            dep.fail(last.message)
            continue
        except TranslationError as exc:
            dep.release()
            last = exc
            continue
        except TollwayError as exc:
            if pieces is not None:
                await pieces.aclose()  # type: ignore[attr-defined]
            # a stream that breaks before its first event reached the client can still fail over
            if not exc.retryable and not isinstance(exc, StreamInterrupted):
                dep.release()
                raise
            _on_failure(rt, dep, exc)
            last = exc
            continue
        except BaseException:
            dep.release()
            if pieces is not None:
                await pieces.aclose()  # type: ignore[attr-defined]
            raise
        dep.mark_ok((time.perf_counter() - started) * 1000.0)
        await _relay(rt, call, dep, upstream, pieces, first, out)
        return
    raise _exhausted(call, last)


async def _relay(rt: Runtime, call: Call, dep: Deployment, upstream: object, pieces: AsyncIterator[bytes],
                 first: bytes, out: Responder) -> None:
    try:
        await out.start_stream(call)
        await out.chunk(first)
        call.ttft_ms = call.elapsed_ms()
        async for piece in pieces:
            await out.chunk(piece)
    except TollwayError as exc:
        dep.fail(exc.message)
        call.status, call.error_type = exc.status, exc.error_type
        account(rt, call, getattr(upstream, "usage", None))
        await out.stream_error(call, exc)
        return
    except asyncio.CancelledError:
        dep.release()
        account(rt, call, getattr(upstream, "usage", None))
        raise
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
    dep.release()
    call.status = 200
    account(rt, call, getattr(upstream, "usage", None))
    await out.end_stream()

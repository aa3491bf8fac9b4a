"""Stage 6: call the candidate deployments in order until one answers.

Connection failures, timeouts, 429 and 5xx move on to the next deployment (an upstream
``Retry-After`` takes that deployment out of rotation for that long); other 4xx answers are the
client's problem and are returned at once. A stream fails over transparently until its first event
reaches the client; after that a failure ends the stream with an explicit error event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from .call import Call, Endpoint
from .egress import Responder
from .errors import (
    NoHealthyUpstream,
    StreamInterrupted,
    TollwayError,
    TranslationError,
    UpstreamsExhausted,
)
from .providers.base import Reply, ReplyStream
from .routing.health import Deployment, order
from .runtime import Runtime

T = TypeVar("T")


def _none_usable(call: Call, candidates: list[Deployment]) -> NoHealthyUpstream:
    err = NoHealthyUpstream(f"Every deployment of '{call.model}' is failing; retry shortly.")
    err.retry_after = min(d.seconds_until_available() for d in candidates) if candidates else None
    return err


def _exhausted(call: Call, last: TollwayError | None) -> TollwayError:
    if isinstance(last, TranslationError):
        return last  # the last candidate cannot express the request: the client's 400, as it is
    detail = f" Last error: {last.message}" if last is not None else ""
    return UpstreamsExhausted(
        f"All {call.attempts} attempt(s) for '{call.model}' failed.{detail}",
        last=last,
        attempts=call.attempts,
    )


def _on_failure(rt: Runtime, dep: Deployment, exc: TollwayError) -> None:
    retry_after = exc.retry_after
    if retry_after is not None:
        retry_after = min(retry_after, rt.config.failover.max_retry_after)
    dep.fail(exc.message, retry_after=retry_after)


async def _first_answer(
    rt: Runtime,
    call: Call,
    candidates: list[Deployment],
    attempt: Callable[[Call, Deployment], Awaitable[T]],
    *,
    whole: bool,
) -> T:
    """Try the deployments in order until ``attempt`` gets an answer from one, and close that
    deployment's breaker. A whole answer ends the deployment's request; a stream's first event
    leaves it counted in flight (the relay ends it)."""
    last: TollwayError | None = None
    usable = order(candidates)
    if not usable:
        raise _none_usable(call, candidates)
    for dep in usable[: rt.config.failover.max_attempts]:
        call.attempts += 1
        call.provider, call.upstream_model = dep.provider.name, dep.upstream_model
        dep.begin()
        started = time.perf_counter()
        try:
            answer = await attempt(call, dep)
        except TranslationError as exc:
            dep.release()  # this deployment's protocol cannot express the request; another may
            last = exc
            continue
        except TollwayError as exc:
            # a stream that breaks before its first event reached the client can still fail over
            if not exc.retryable and not isinstance(exc, StreamInterrupted):
                dep.release()
                raise
            _on_failure(rt, dep, exc)
            last = exc
            continue
        except BaseException:
            dep.release()
            raise
        latency_ms = (time.perf_counter() - started) * 1000.0
        if whole:
            dep.succeed(latency_ms)
        else:
            dep.mark_ok(latency_ms)
        return answer
    raise _exhausted(call, last)


def _whole(call: Call, dep: Deployment) -> Awaitable[Reply]:
    # the upstream's own coroutine, not one wrapping it: one frame fewer on every resume
    if call.endpoint is Endpoint.EMBEDDINGS:
        return dep.upstream.embed(call, dep.upstream_model)
    return dep.upstream.complete(call, dep.upstream_model)


def complete(rt: Runtime, call: Call, candidates: list[Deployment]) -> Awaitable[Reply]:
    """The first whole answer (a coroutine of its own would add a frame to every resume)."""
    return _first_answer(rt, call, candidates, _whole, whole=True)


async def _opened(call: Call, dep: Deployment) -> tuple[Deployment, ReplyStream, AsyncIterator[bytes], bytes]:
    upstream = await dep.upstream.stream(call, dep.upstream_model)
    pieces = aiter(upstream)
    try:
        first = await anext(pieces)
    except StopAsyncIteration:
        raise StreamInterrupted(f"{dep.provider.name}: the stream ended before any event") from None
    except BaseException:
        await pieces.aclose()  # type: ignore[attr-defined]
        raise
    return dep, upstream, pieces, first


async def stream(rt: Runtime, call: Call, candidates: list[Deployment], out: Responder) -> None:
    dep, upstream, pieces, first = await _first_answer(rt, call, candidates, _opened, whole=False)
    await _relay(call, dep, upstream, pieces, first, out)


async def _relay(
    call: Call,
    dep: Deployment,
    upstream: ReplyStream,
    pieces: AsyncIterator[bytes],
    first: bytes,
    out: Responder,
) -> None:
    try:
        await out.start_stream(call)
        await out.chunk(first)
        call.ttft_ms = call.elapsed_ms()
        async for piece in pieces:
            await out.chunk(piece)
    except TollwayError as exc:
        dep.fail(exc.message)
        call.failure = exc
        await out.stream_error(call, exc)
        return
    except asyncio.CancelledError:
        dep.release()
        raise
    finally:
        await pieces.aclose()  # type: ignore[attr-defined]
        call.usage = upstream.usage  # complete, or what arrived before the stream broke off
    dep.release()
    await out.end_stream()

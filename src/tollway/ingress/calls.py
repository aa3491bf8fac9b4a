"""What every client protocol's endpoint does around the pipeline: read the body into a ``Call``
(answering and logging a bad request in the client's envelope), then serve it, watching for a
disconnect while a stream runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Awaitable, Callable
from typing import Any

from .. import pipeline
from ..accounting import finish
from ..asgi import Receive, Scope, Send, parse_object, read_sized_body
from ..call import Call, Endpoint
from ..egress import ASGIResponder
from ..errors import ClientDisconnected, TollwayError
from ..protocols.base import ClientProtocol
from ..runtime import Runtime

Validate = Callable[[dict[str, Any]], tuple[str, bool]]
"""Checks a body in the endpoint's own format (each protocol module has its own); returns
(requested model, stream)."""

_ID_PREFIX = "req_" + os.urandom(6).hex()  # random per process: ids stay unique across replicas
# hex() of 16**12 + n is "0x1" and then n in 12 zero-padded hex digits: cheaper than a format spec
_ids = itertools.count(16**12 + 1)


def new_request_id() -> str:
    return _ID_PREFIX + hex(next(_ids))[3:]


def new_call(scope: Scope, protocol: ClientProtocol, endpoint: Endpoint) -> Call:
    return _new_call(scope, protocol, endpoint)[0]


def _new_call(scope: Scope, protocol: ClientProtocol, endpoint: Endpoint) -> tuple[Call, bytes | None]:
    """The Call and the request's Content-Length, from one pass over the headers. The client's key is
    the first ``Authorization: Bearer`` with a token (OpenAI clients), else the last ``x-api-key``
    (Anthropic's); the first Cache-Control and Content-Length count."""
    call = Call(new_request_id(), protocol, endpoint, {}, "", False)
    bearer: bytes | None = None
    api_key: bytes | None = None
    cache_control: bytes | None = None
    length: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            if length is None:
                length = value
        elif name == b"authorization":
            if bearer is None:
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    bearer = token.strip()
        elif name == b"x-api-key":
            api_key = value
        elif name == b"cache-control" and cache_control is None:
            cache_control = value
    if bearer is not None:
        call.api_key = bytes(bearer).decode("latin-1")
    elif api_key is not None:
        call.api_key = bytes(api_key.strip()).decode("latin-1")
    if cache_control:
        call.cache_control = cache_control.decode("latin-1")
    return call, length


async def serve(
    rt: Runtime,
    scope: Scope,
    receive: Receive,
    send: Send,
    protocol: ClientProtocol,
    endpoint: Endpoint,
    validate: Validate,
) -> None:
    """Read the request into a Call (a refused one is answered and logged; a client that left is
    forgotten) and run the pipeline on it, answering in the client's protocol."""
    out = ASGIResponder(send, protocol)
    call, length = _new_call(scope, protocol, endpoint)
    try:
        call.raw = await read_sized_body(receive, rt.config.server.max_body_bytes, length)
        call.body = parse_object(call.raw)
        call.model, call.stream = validate(call.body)
    except ClientDisconnected:
        return
    except TollwayError as exc:
        if isinstance(call.body.get("model"), str):
            call.model = call.body["model"]
        call.failure = exc
        await out.error(call, exc)
        finish(rt, call)
        return
    if call.stream:
        await run_until_disconnect(pipeline.handle(rt, call, out), receive)
    else:
        await pipeline.handle(rt, call, out)


async def run_until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Run a streaming response; if the client disconnects first, cancel it (and so the upstream call)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        else:
            task.result()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass

"""The bare minimum a Python proxy does: the reference tollway is measured against.

A raw ASGI app and one pooled ``aiohttp.ClientSession``. It reads the request body, POSTs it to the
upstream and returns the bytes; a streamed request (``"stream":true`` in the body) goes to the SSE
upstream and its bytes are passed through chunk by chunk. No parsing, no validation, no logging, no
accounting. Anything tollway costs beyond this is the price of its features.

    uvicorn --app-dir bench bare_proxy:app --host 127.0.0.1 --port 18090 \\
        --loop uvloop --http httptools --no-access-log --log-level warning

``BARE_UPSTREAM`` (default http://127.0.0.1:18080) and ``BARE_STREAM_UPSTREAM``
(default http://127.0.0.1:18081) choose the upstreams; the request path is appended as is.
``BARE_GC_THRESHOLD=N`` gives it the garbage-collector setting ``tollway start`` uses (``gc.freeze()``
after startup, young-generation threshold N): off by default, so the reference stays the bare
minimum; ``bench/paired.py --bare-gc`` uses it to show how much of tollway's lead over the default
setting is that setting rather than its features.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:18080").rstrip("/")
STREAM_UPSTREAM = os.environ.get("BARE_STREAM_UPSTREAM", "http://127.0.0.1:18081").rstrip("/")
GC_THRESHOLD = int(os.environ.get("BARE_GC_THRESHOLD") or 0)

_session: aiohttp.ClientSession | None = None


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=None, enable_cleanup_closed=False)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
    )


async def _lifespan(receive: Receive, send: Send) -> None:
    global _session
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            _session = _new_session()
            if GC_THRESHOLD:
                gc.freeze()
                gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _session is not None:
                await _session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    global _session
    if _session is None:  # served without lifespan
        _session = _new_session()

    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break

    stream = b'"stream":true' in body or b'"stream": true' in body
    url = (STREAM_UPSTREAM if stream else UPSTREAM) + scope["path"]
    headers = {"Content-Type": "application/json"}
    for name, value in scope["headers"]:
        if name == b"authorization":
            headers["Authorization"] = value.decode("latin-1")

    try:
        async with _session.post(url, data=body, headers=headers) as resp:
            content_type = resp.headers.get("Content-Type", "application/json").encode("latin-1")
            if stream:
                await send(
                    {
                        "type": "http.response.start",
                        "status": resp.status,
                        "headers": [(b"content-type", content_type), (b"cache-control", b"no-cache")],
                    }
                )
                async for chunk in resp.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await resp.read()
            await send(
                {
                    "type": "http.response.start",
                    "status": resp.status,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": data})
    except aiohttp.ClientError as exc:
        data = b'{"error":{"message":"upstream error: ' + type(exc).__name__.encode() + b'"}}'
        await send(
            {
                "type": "http.response.start",
                "status": 502,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )

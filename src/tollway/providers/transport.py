"""HTTP to one upstream: a pooled keep-alive aiohttp session, exception mapping into the error tree,
``Retry-After`` parsing, and the SSE relay loop every provider's stream shares."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import orjson
from aiohttp.client_proto import ResponseHandler

from ..config import ProviderConfig
from ..errors import StreamInterrupted, TollwayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ..sse import SSEDecoder, SSEEvent

T = TypeVar("T")

ErrorParser = Callable[[int, bytes, float | None], UpstreamError]
"""(status, body, retry_after) → the upstream's error, from its own envelope."""


class Transport:
    def __init__(self, config: ProviderConfig, headers: dict[str, str], parse_error: ErrorParser) -> None:
        self.config = config
        self.headers = {"Content-Type": "application/json", **headers, **config.headers}
        self._parse_error = parse_error
        self._session: aiohttp.ClientSession | None = None
        # One session-wide timeout: connect, then at most `timeout` seconds without a byte. A whole-
        # request deadline would arm a timer per request (measured: ~12 µs of CPU each), and an LLM
        # sends nothing until a non-streamed answer is complete, so silence is the deadline anyway.
        # The silence is watched by the `_Watchdog`, not by aiohttp's per-chunk timer (see there).
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.timeout
        )
        self._watchdog = _Watchdog(min(config.timeout / 4, 1.0))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = _WatchedConnector(
                self._watchdog, limit=self.config.max_connections, keepalive_timeout=60, ttl_dns_cache=300
            )
            # the headers as the session's defaults: aiohttp then copies them per request instead of
            # merging a second mapping into them
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers=self.headers
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._watchdog.close()

    async def post(self, url: str, body: dict[str, Any] | bytes) -> bytes:
        """POST JSON (a dict, or bytes sent as they are: a client's body passed through); the body
        of a 200 answer, or the upstream's error raised."""
        return await self.post_then(url, body, _as_is)

    async def post_then(self, url: str, body: dict[str, Any] | bytes, then: Callable[[bytes], T]) -> T:
        """``post``, and ``then`` applied to the answer's body in the same coroutine (a provider's
        ``complete`` returns this coroutine rather than awaiting it in one of its own)."""
        try:
            session = self._session or self._client()
            # No ``async with``: read() takes the body to its end, which hands the connection back to
            # the pool (and closes the response if reading fails), so the two context managers'
            # four coroutines per call would have nothing left to do.
            resp = await session.post(url, data=body if type(body) is bytes else orjson.dumps(body))
            raw = await resp.read()
            if resp.status != 200:
                raise self._parse_error(resp.status, raw, retry_after(resp.headers))
        except TollwayError:
            raise
        except Exception as exc:
            raise self.map(exc) from exc
        return then(raw)

    async def open_stream(self, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST and return the response once its status says the stream has begun."""
        try:
            resp = await self._client().post(url, data=orjson.dumps(body))
        except Exception as exc:
            raise self.map(exc) from exc
        if resp.status != 200:
            try:
                raw = await resp.read()
            except Exception as exc:
                raise self.map(exc) from exc
            finally:
                resp.release()
            raise self._parse_error(resp.status, raw, retry_after(resp.headers))
        return resp

    def map(self, exc: BaseException) -> TollwayError:
        name = self.config.name
        if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return UpstreamTimeout(f"{name}: no answer within the timeout")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamUnavailable(f"{name}: cannot connect ({exc.os_error.strerror or 'refused'})")
        if isinstance(exc, aiohttp.ClientError):
            return UpstreamUnavailable(f"{name}: connection failed ({type(exc).__name__})")
        return UpstreamUnavailable(f"{name}: {type(exc).__name__}")


class _WatchedConnection(ResponseHandler):
    """aiohttp's connection protocol with its read timer replaced by a time stamp. aiohttp enforces
    ``sock_read`` by cancelling and re-arming a loop timer on every chunk received (measured: ~11,000
    instructions a proxied request); here a chunk only notes the time, and the transport's watchdog
    fails a connection silent past its ``read_timeout`` through aiohttp's own ``_on_read_timeout``,
    so callers see the same ``ServerTimeoutError`` at the same places as before. (The overrides lean
    on private protocol methods aiohttp has kept for years; tests/test_transport.py fails if they stop
    being called.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, watchdog: _Watchdog) -> None:
        super().__init__(loop)
        self._watchdog = watchdog
        self.watching = False
        self.last_read = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._watchdog.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._watchdog.discard(self)
        super().connection_lost(exc)

    def _reschedule_timeout(self) -> None:
        if self._read_timeout:
            self.watching = True
            self.last_read = self._loop.time()
        else:
            self.watching = False

    def _drop_timeout(self) -> None:
        self.watching = False

    def expire_if_silent(self, now: float) -> None:
        timeout = self._read_timeout
        if self.watching and timeout and now - self.last_read >= timeout:
            self._on_read_timeout()  # the exception aiohttp's own timer raises; it stops watching


class _Watchdog:
    """One periodic check of a transport's open connections, ticking only while there are any: a
    connection silent for its read timeout fails between ``timeout`` and ``timeout + tick`` seconds
    after its last byte (the tick is at most a quarter of the timeout, and at most 1 s)."""

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._connections: set[_WatchedConnection] = set()
        self._handle: asyncio.TimerHandle | None = None

    def add(self, connection: _WatchedConnection) -> None:
        self._connections.add(connection)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self._tick, self._check)

    def discard(self, connection: _WatchedConnection) -> None:
        self._connections.discard(connection)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in list(self._connections):
            connection.expire_if_silent(now)
        self._handle = loop.call_later(self._tick, self._check) if self._connections else None


class _WatchedConnector(aiohttp.TCPConnector):
    def __init__(self, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._factory = functools.partial(_watched, self._loop, watchdog)


def _watched(loop: asyncio.AbstractEventLoop, watchdog: _Watchdog) -> ResponseHandler:
    return _WatchedConnection(loop, watchdog)


async def relay_sse(
    resp: aiohttp.ClientResponse,
    provider: str,
    on_event: Callable[[SSEEvent], bytes],
    on_end: Callable[[], bytes],
    on_failure: Callable[[], None],
) -> AsyncIterator[bytes]:
    """Decode an upstream SSE body as it arrives; ``on_event`` turns each event into bytes for the
    client (empty: nothing to send), ``on_end`` runs when the body ends (it raises if the answer is
    incomplete). ``on_failure`` runs before any failure propagates (to estimate usage)."""
    decoder = SSEDecoder()
    finished = False
    try:
        async for chunk in resp.content.iter_any():
            piece = b"".join([on_event(e) for e in decoder.feed(chunk)])
            if piece:
                yield piece
        piece = b"".join([on_event(e) for e in decoder.close()]) + on_end()
        finished = True
        if piece:
            yield piece
    except TollwayError:
        on_failure()
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError):
        on_failure()
        raise StreamInterrupted(f"{provider}: the stream stalled past the timeout") from None
    except aiohttp.ClientError as exc:
        on_failure()
        raise StreamInterrupted(f"{provider}: the stream broke ({type(exc).__name__})") from None
    finally:
        if finished:
            resp.release()
        else:
            resp.close()


def _as_is(raw: bytes) -> bytes:
    return raw


def parse_event_json(data: bytes, provider: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise StreamInterrupted(f"{provider}: the stream sent an event that is not JSON") from None


def retry_after(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, parsed.timestamp() - time.time())

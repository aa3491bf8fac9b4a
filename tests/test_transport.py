"""The upstream read timeout, over real sockets: a scripted upstream that answers in pieces with
pauses between them, so every place an upstream can fall silent is hit exactly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest

from tollway.config import parse_config
from tollway.errors import StreamInterrupted, TollwayError, UpstreamError, UpstreamTimeout
from tollway.providers.transport import Transport, relay_sse
from tollway.sse import SSEEvent

TIMEOUT = 0.3
TICK = TIMEOUT / 4  # the watchdog's period for this timeout
SLACK = 0.25  # scheduling on a busy CI box

Script = Sequence[tuple[float, bytes]]  # (pause before, bytes to send); then silence until closed

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(n: int) -> bytes:
    return chunk(b'data: {"n": %d}\n\n' % n)


async def serve(script: Script) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            for pause, data in script:
                await asyncio.sleep(pause)
                writer.write(data)
            await reader.read()  # silent until the client hangs up
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/chat"


def parse_error(status: int, raw: bytes, retry_after: float | None) -> UpstreamError:
    return UpstreamError(f"status {status}", status=status, provider="up")


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    config = parse_config(
        {
            "providers": [
                {
                    "name": "up",
                    "kind": "mock",
                    "base_url": "http://127.0.0.1:1/v1",
                    "models": ["m"],
                    "timeout": TIMEOUT,
                }
            ]
        }
    ).providers[0]
    t = Transport(config, {}, parse_error)
    yield t
    await t.close()


async def timed_post(transport: Transport, script: Script) -> tuple[float, BaseException | bytes]:
    server, url = await serve(script)
    t0 = time.perf_counter()
    try:
        result: BaseException | bytes = await transport.post(url, {})
    except TollwayError as exc:
        result = exc
    elapsed = time.perf_counter() - t0
    server.close()
    return elapsed, result


async def test_silence_before_headers_times_out(transport: Transport) -> None:
    elapsed, result = await timed_post(transport, [])
    assert isinstance(result, UpstreamTimeout) and "no answer within the timeout" in str(result)
    assert TIMEOUT <= elapsed < TIMEOUT + TICK + SLACK


async def test_silence_mid_body_times_out(transport: Transport) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    elapsed, result = await timed_post(transport, [(0.1, head + b'{"partial": ')])
    assert isinstance(result, UpstreamTimeout)
    assert 0.1 + TIMEOUT <= elapsed < 0.1 + TIMEOUT + TICK + SLACK


async def test_slow_but_never_silent_answer_is_not_a_timeout(transport: Transport) -> None:
    # the timeout bounds silence, not the whole answer: 1.2 s in all, never 0.3 s without a byte
    body = b'{"ok": true, "padding": "' + b"x" * 40 + b'"}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    pieces = [head, *(body[i : i + 10] for i in range(0, len(body), 10))]
    elapsed, result = await timed_post(transport, [(0.15, p) for p in pieces])
    assert result == body and elapsed > 2 * TIMEOUT


async def relay(transport: Transport, script: Script) -> tuple[list[bytes], BaseException | None, int]:
    server, url = await serve(script)
    got: list[bytes] = []
    failures = 0

    def on_failure() -> None:
        nonlocal failures
        failures += 1

    def on_event(e: SSEEvent) -> bytes:
        return e.data

    error: BaseException | None = None
    try:
        resp = await transport.open_stream(url, {})
        async for piece in relay_sse(resp, "up", on_event, lambda: b"", on_failure):
            got.append(piece)
    except TollwayError as exc:
        error = exc
    server.close()
    return got, error, failures


async def test_silence_between_stream_events_interrupts(transport: Transport) -> None:
    t0 = time.perf_counter()
    got, error, failures = await relay(transport, [(0, SSE_HEAD + event(1)), (0.1, event(2))])
    elapsed = time.perf_counter() - t0
    assert got == [b'{"n": 1}', b'{"n": 2}']
    assert isinstance(error, StreamInterrupted) and str(error) == "up: the stream stalled past the timeout"
    assert failures == 1
    assert 0.1 + TIMEOUT <= elapsed < 0.1 + TIMEOUT + TICK + SLACK


async def test_silence_before_the_first_stream_byte_times_out(transport: Transport) -> None:
    got, error, failures = await relay(transport, [])
    assert got == [] and isinstance(error, UpstreamTimeout) and failures == 0


async def test_slow_stream_within_the_timeout_completes(transport: Transport) -> None:
    script = [(0, SSE_HEAD), *((0.15, event(n)) for n in range(6)), (0.15, b"0\r\n\r\n")]
    got, error, failures = await relay(transport, script)
    assert error is None and failures == 0 and len(got) == 6


async def test_cancelling_during_silence_is_not_a_timeout(transport: Transport) -> None:
    # a client disconnect or shutdown cancels the attempt: that must stay a cancellation, before
    # and well past the moment the timeout would have fired
    server, url = await serve([])
    task = asyncio.create_task(transport.post(url, {}))
    await asyncio.sleep(TIMEOUT / 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(TIMEOUT + 2 * TICK)  # the cancelled attempt's connection no longer fires
    server.close()

    server, url = await serve([(0, SSE_HEAD + event(1))])
    resp = await transport.open_stream(url, {})
    failures: list[None] = []
    stream = relay_sse(resp, "up", lambda e: e.data, lambda: b"", lambda: failures.append(None))

    async def consume() -> None:
        async for _ in stream:
            pass

    consuming = asyncio.create_task(consume())
    await asyncio.sleep(TIMEOUT / 2)
    consuming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consuming
    assert failures == []
    server.close()


async def test_reads_are_watched_without_a_timer_each(transport: Transport) -> None:
    # the point of the watchdog: aiohttp's own per-read timer is never armed (if aiohttp renamed
    # the methods the watched connection overrides, this fails rather than silently costing more)
    server, url = await serve([])
    task = asyncio.create_task(transport.post(url, {}))
    await asyncio.sleep(TIMEOUT / 2)
    connections = list(transport._watchdog._connections)
    assert len(connections) == 1 and connections[0].watching
    assert connections[0]._read_timeout_handle is None
    with pytest.raises(UpstreamTimeout):
        await task
    server.close()

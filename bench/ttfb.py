"""Time to first byte of a streamed chat completion, over N sequential requests on one connection.

    python bench/ttfb.py http://127.0.0.1:18081/v1/chat/completions -n 300

The clock starts just before the request is sent and stops when the first body byte arrives; the
rest of the stream is then read and must end in ``data: [DONE]`` (``measure``'s ``complete`` judges
other protocols' streams for bench/streams.py). Prints one JSON object (ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

STREAM_BODY = (
    b'{"model":"gpt-4o-mini-stream","messages":[{"role":"user","content":"hi"}],'
    b'"stream":true,"stream_options":{"include_usage":true}}'
)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of already-collected samples."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil
    return ordered[int(rank) - 1]


def ends_in_done(stream: bytes) -> bool:
    """An OpenAI-format stream that finished: its last event is ``data: [DONE]``."""
    return stream.rstrip().endswith(b"data: [DONE]")


async def measure(
    url: str,
    n: int,
    warmup: int = 20,
    body: bytes = STREAM_BODY,
    time_limit: float = 60.0,
    min_seconds: float = 0.0,
    headers: dict[str, str] | None = None,
    complete: Callable[[bytes], bool] = ends_in_done,
) -> dict[str, Any]:
    """``n`` measured requests after ``warmup`` ones; more if ``min_seconds`` have not passed yet.
    ``headers`` are added to the request's; a stream counts when ``complete`` says it finished."""
    connector = aiohttp.TCPConnector(limit=1)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench", **(headers or {})}
    samples: list[float] = []
    totals: list[float] = []
    failures = 0
    first_failure = ""
    deadline = time.monotonic() + time_limit
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        started = time.monotonic()
        i = -1
        while True:
            i += 1
            now = time.monotonic()
            if now > deadline or (i >= warmup + n and now - started >= min_seconds):
                break
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    first = await resp.content.readany()
                    t1 = time.perf_counter()
                    rest = await resp.content.read()
                    t2 = time.perf_counter()
                    whole = first + rest
                    ok = resp.status == 200 and complete(whole)
                    if not ok and not first_failure:
                        first_failure = f"status {resp.status}: {whole[:200]!r}"
            except aiohttp.ClientError as exc:
                ok = False
                if not first_failure:
                    first_failure = repr(exc)
            if i < warmup:
                continue
            if not ok:
                failures += 1
                continue
            samples.append((t1 - t0) * 1000)
            totals.append((t2 - t0) * 1000)
    if not samples:
        return {"url": url, "n": 0, "failures": failures, "first_failure": first_failure}
    return {
        "url": url,
        "n": len(samples),
        "failures": failures,
        "first_failure": first_failure,
        "ttfb_ms": {
            "p50": round(percentile(samples, 50), 4),
            "p95": round(percentile(samples, 95), 4),
            "p99": round(percentile(samples, 99), 4),
            "mean": round(statistics.fmean(samples), 4),
            "min": round(min(samples), 4),
        },
        "total_ms": {"p50": round(percentile(totals, 50), 4), "p95": round(percentile(totals, 95), 4)},
    }


def run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run on uvloop when it is installed (the client's own overhead is then smaller and steadier)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("-n", type=int, default=300, help="measured requests (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--body", help="request body (default: a small streamed chat completion)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="stop after this many seconds")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=0.0,
        help="keep sending (beyond -n) until this many seconds have passed",
    )
    args = parser.parse_args()
    body = args.body.encode() if args.body else STREAM_BODY
    result = run(measure(args.url, args.n, args.warmup, body, args.time_limit, args.min_seconds))
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()

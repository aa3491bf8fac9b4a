"""``tollway demo``: the main job on a fresh machine with no keys and nothing running.

Two fake providers start in this process and the gateway in its own (``tollway start``, as a user
would run it); the official ``openai`` SDK sends a few thousand calls (streamed and not) through the
gateway while provider ``mock-a`` goes down for the middle part of the run. The gateway is then
stopped with SIGTERM (its graceful stop flushes the log) and a table shows what happened, read back
from the request log.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import data_dir
from .mock import MockOptions, start_mock

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletionMessageParam

    from .store import SpendRow

MODELS = ["gpt-4o-mini", "gpt-4o"]
PROMPTS = [
    "Summarize the plot of Hamlet in two sentences.",
    "What is the capital of Australia?",
    "Write a haiku about failover.",
    "Explain what an API gateway does.",
    "List three uses of a circuit breaker.",
    "Translate 'good morning' to French.",
]


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    failovers: int = 0
    streamed: int = 0
    latencies: list[float] = field(default_factory=list)
    providers: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    during_outage: int = 0
    during_outage_ok: int = 0
    gateway_ms: list[float] = field(default_factory=list)


async def run_demo(*, requests: int = 2000, concurrency: int = 16, quiet: bool = False) -> Tally:
    import openai

    console = Console(quiet=quiet)
    db = data_dir() / "demo.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    storage = f"sqlite:///{db}"

    options = MockOptions(models=MODELS, chunk_delay_ms=1.0)
    mock_a = await start_mock(options=options)
    mock_b = await start_mock(options=options)
    port = _free_port()
    config = db.with_name("demo.toml")
    config.write_text(_CONFIG.format(port=port, storage=storage, a=mock_a.url, b=mock_b.url))
    gateway = subprocess.Popen(
        [sys.executable, "-m", "tollway", "start", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    url = f"http://127.0.0.1:{port}"
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="demo", max_retries=0, timeout=30)
    tally = Tally()
    started = time.perf_counter()
    try:
        await _wait_ready(url, gateway)
        console.print(
            f"gateway (pid {gateway.pid}) at [bold]{url}/v1[/bold]; "
            "fake providers mock-a (primary) and mock-b"
        )
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("mock-a up", total=requests)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(requests):
                queue.put_nowait(i)
            down_at, up_at = int(requests * 0.35), int(requests * 0.7)
            done = 0

            async def phase_switch(i: int) -> None:
                if i == down_at:
                    await mock_a.set_fault(status=503)
                    progress.update(task, description="[red]mock-a DOWN[/red] (503s)")
                elif i == up_at:
                    await mock_a.clear_fault()
                    progress.update(task, description="[green]mock-a back[/green]")

            async def worker() -> None:
                nonlocal done
                while not queue.empty():
                    i = queue.get_nowait()
                    await phase_switch(i)
                    outage = down_at <= i < up_at
                    ok = await _one(client, i, tally)
                    tally.during_outage += outage
                    tally.during_outage_ok += outage and ok
                    done += 1
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        gateway.send_signal(signal.SIGTERM)  # a graceful stop flushes every queued log row
        await asyncio.to_thread(gateway.wait, 30)
        from .store import LogStore

        store = await LogStore.open(storage)
        try:
            spend = await store.spend(since=0, group_by=("model", "provider"))
            tally.gateway_ms = sorted(r.latency_ms for r in await store.recent(requests + 10))
        finally:
            await store.close()
    finally:
        await client.close()
        if gateway.poll() is None:
            gateway.kill()
        await mock_a.close()
        await mock_b.close()

    _report(console, tally, spend, elapsed, storage)
    return tally


_CONFIG = """
[server]
port = {port}
[storage]
url = "{storage}"
[health]
cooldown = 1.0
[[providers]]
name = "mock-a"
kind = "mock"
base_url = "{a}/v1"
models = ["gpt-4o-mini", "gpt-4o"]
[[providers]]
name = "mock-b"
kind = "mock"
base_url = "{b}/v1"
models = ["gpt-4o-mini", "gpt-4o"]
priority = 1
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"the gateway exited during startup:\n{err}")
            try:
                async with session.get(f"{url}/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.025)
    raise RuntimeError("the gateway did not start within 10 s")


async def _one(client: AsyncOpenAI, i: int, tally: Tally) -> bool:
    import openai

    rng = random.Random(i)
    model = MODELS[0] if rng.random() < 0.75 else MODELS[1]
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": rng.choice(PROMPTS) + f" (#{i})"}
    ]
    stream = rng.random() < 0.3
    t0 = time.perf_counter()
    try:
        if stream:
            s = await client.chat.completions.create(model=model, messages=messages, stream=True)
            headers = s.response.headers
            async for _ in s:
                pass
            tally.streamed += 1
        else:
            raw = await client.chat.completions.with_raw_response.create(model=model, messages=messages)
            headers = raw.headers
            raw.parse()
    except openai.APIError as exc:
        tally.failed += 1
        tally.errors[type(exc).__name__] += 1
        return False
    tally.ok += 1
    tally.latencies.append((time.perf_counter() - t0) * 1000)
    tally.providers[headers.get("x-tollway-provider", "?")] += 1
    if int(headers.get("x-tollway-attempts", "1")) > 1:
        tally.failovers += 1
    return True


def _pct(values: list[float], q: float) -> float:
    return values[int(q * (len(values) - 1))]


def _report(console: Console, tally: Tally, spend: list[SpendRow], elapsed: float, storage: str) -> None:
    total = tally.ok + tally.failed
    lat = sorted(tally.latencies)
    table = Table(title="tollway demo", show_header=False)
    table.add_row("requests", f"{total} ({tally.streamed} streamed) in {elapsed:.1f} s")
    table.add_row("success rate", f"{100.0 * tally.ok / max(total, 1):.2f}%")
    table.add_row("failovers (served by a 2nd deployment)", str(tally.failovers))
    table.add_row("served by", ", ".join(f"{p}: {n}" for p, n in tally.providers.most_common()))
    table.add_row("served while mock-a was down", f"{tally.during_outage_ok} of {tally.during_outage}")
    if lat:
        table.add_row(
            "latency at the client p50 / p95", f"{_pct(lat, 0.5):.1f} ms / {_pct(lat, 0.95):.1f} ms"
        )
    if tally.gateway_ms:
        gw = tally.gateway_ms
        table.add_row("latency in the gateway p50 / p95", f"{_pct(gw, 0.5):.1f} ms / {_pct(gw, 0.95):.1f} ms")
    if tally.errors:
        table.add_row("client errors", ", ".join(f"{k}: {v}" for k, v in tally.errors.items()))
    console.print(table)

    cost = Table(title="cost by model (from the request log)")
    for col in ("model", "provider", "requests", "tokens in", "tokens out", "cost $"):
        cost.add_column(col, justify="right" if col not in ("model", "provider") else "left")
    total_cost = 0.0
    for row in spend:
        g = row.group
        total_cost += row.cost
        cost.add_row(
            g.get("model", ""),
            g.get("provider", ""),
            str(row.requests),
            str(row.input_tokens),
            str(row.output_tokens),
            f"{row.cost:.6f}",
        )
    cost.add_row("[bold]total spend[/bold]", "", "", "", "", f"[bold]{total_cost:.6f}[/bold]")
    console.print(cost)
    console.print(
        f"Every call is in the log. Look at it with:\n  [bold]tollway logs --storage {storage}[/bold]\n"
        f"  [bold]tollway spend --storage {storage}[/bold]"
    )

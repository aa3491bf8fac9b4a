"""``tollway demo``: the main job on a fresh machine with no keys and nothing running.

Two fake providers and the gateway start in this process; the official ``openai`` SDK sends a few
thousand calls (streamed and not) through the gateway while provider ``mock-a`` goes down for the
middle part of the run; then a table shows what happened and where the log is.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .config import Config, HealthConfig, ProviderConfig, StorageConfig, data_dir
from .mock import MockOptions, start_mock
from .server import start_server

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


async def run_demo(*, requests: int = 2000, concurrency: int = 32, quiet: bool = False) -> Tally:
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
    config = Config(
        providers=[
            ProviderConfig(name="mock-a", kind="mock", base_url=f"{mock_a.url}/v1", models=MODELS, priority=0),
            ProviderConfig(name="mock-b", kind="mock", base_url=f"{mock_b.url}/v1", models=MODELS, priority=1),
        ],
        health=HealthConfig(cooldown=1.0),
        storage=StorageConfig(url=storage),
    )
    gateway = await start_server(config, storage=storage)
    client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="demo", max_retries=0, timeout=30)
    tally = Tally()
    started = time.perf_counter()
    try:
        console.print(f"gateway at [bold]{gateway.url}/v1[/bold]; fake providers mock-a (primary) and mock-b")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
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
                    await _one(client, i, tally)
                    done += 1
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        await gateway.gateway.runtime.writer.flush()  # type: ignore[union-attr]
        from .store import LogStore

        store = await LogStore.open(storage)
        try:
            spend = await store.spend(since=0, group_by=("model", "provider"))
        finally:
            await store.close()
    finally:
        await client.close()
        await gateway.close()
        await mock_a.close()
        await mock_b.close()

    elapsed = time.perf_counter() - started
    _report(console, tally, spend, elapsed, storage)
    return tally


async def _one(client: object, i: int, tally: Tally) -> None:
    import openai

    assert isinstance(client, openai.AsyncOpenAI)
    rng = random.Random(i)
    model = MODELS[0] if rng.random() < 0.75 else MODELS[1]
    messages = [{"role": "user", "content": rng.choice(PROMPTS) + f" (#{i})"}]
    stream = rng.random() < 0.3
    t0 = time.perf_counter()
    try:
        if stream:
            s = await client.chat.completions.create(model=model, messages=messages, stream=True)  # type: ignore[arg-type]
            headers = s.response.headers
            async for _ in s:
                pass
            tally.streamed += 1
        else:
            raw = await client.chat.completions.with_raw_response.create(model=model, messages=messages)  # type: ignore[arg-type]
            headers = raw.headers
            raw.parse()
    except openai.APIError as exc:
        tally.failed += 1
        tally.errors[type(exc).__name__] += 1
        return
    tally.ok += 1
    tally.latencies.append((time.perf_counter() - t0) * 1000)
    tally.providers[headers.get("x-tollway-provider", "?")] += 1
    if int(headers.get("x-tollway-attempts", "1")) > 1:
        tally.failovers += 1


def _report(console: Console, tally: Tally, spend: list[object], elapsed: float, storage: str) -> None:
    total = tally.ok + tally.failed
    lat = sorted(tally.latencies)
    table = Table(title="tollway demo", show_header=False)
    table.add_row("requests", f"{total} ({tally.streamed} streamed) in {elapsed:.1f} s")
    table.add_row("success rate", f"{100.0 * tally.ok / max(total, 1):.2f}%")
    table.add_row("failovers (served by a 2nd deployment)", str(tally.failovers))
    table.add_row("served by", ", ".join(f"{p}: {n}" for p, n in tally.providers.most_common()))
    if lat:
        table.add_row("latency p50 / p95", f"{statistics.median(lat):.1f} ms / {lat[int(0.95 * (len(lat) - 1))]:.1f} ms")
    if tally.errors:
        table.add_row("client errors", ", ".join(f"{k}: {v}" for k, v in tally.errors.items()))
    console.print(table)

    cost = Table(title="cost by model (from the request log)")
    for col in ("model", "provider", "requests", "tokens in", "tokens out", "cost $"):
        cost.add_column(col, justify="right" if col not in ("model", "provider") else "left")
    total_cost = 0.0
    for row in spend:
        g = row.group  # type: ignore[attr-defined]
        total_cost += row.cost  # type: ignore[attr-defined]
        cost.add_row(g.get("model", ""), g.get("provider", ""), str(row.requests),  # type: ignore[attr-defined]
                     str(row.input_tokens), str(row.output_tokens), f"{row.cost:.6f}")  # type: ignore[attr-defined]
    cost.add_row("[bold]total spend[/bold]", "", "", "", "", f"[bold]{total_cost:.6f}[/bold]")
    console.print(cost)
    console.print(f"Every call is in the log. Look at it with:\n  [bold]tollway logs --storage {storage}[/bold]\n"
                  f"  [bold]tollway spend --storage {storage}[/bold]")

"""What virtual keys, rate limits and budgets cost on the request path, with the memory and Redis backends.

    python bench/limits_bench.py                      # both modes (~3 minutes)
    python bench/limits_bench.py --mode micro -n 20000
    python bench/limits_bench.py --mode http --duration 10 --rounds 3

micro  In one process, no HTTP. Latency of stage 1 (authenticate) + stage 3 (admit), what a response
       waits for, one request at a time (p50/p99, µs); and CPU per request including the settlement
       (which runs after the response is sent) with 64 requests in flight.
http   ``tollway start`` pinned to core 0 in front of bench/upstream.py's nginx (core 1, with wrk):
       requests/s at 64 connections and p50 latency at 1 connection, for each scenario.

Scenarios: ``open`` (no key exists: auth short-circuits, nothing to limit); ``key`` (a key, no
limits); ``limits-memory`` and ``limits-redis`` (a key with rpm, tpm, concurrency and a budget, a
tenant with rpm and a budget, and a gateway budget: 7 ledgers per request, limits never reached).
Redis is ``$TOLLWAY_TEST_REDIS``, else the machine's at 127.0.0.1:6379 (a unique key prefix, removed
afterwards).
Prints markdown; writes bench/results/limits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work" / "limits"  # gitignored, like bench/run.py's .work
RESULTS = BENCH_DIR / "results" / "limits.json"
REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS") or "redis://127.0.0.1:6379/0"
SCENARIOS = ("open", "key", "limits-memory", "limits-redis")
GATEWAY_PORT = 18210
UPSTREAM_PORTS = (18280, 18281)  # not bench/run.py's 18080/18081: both benchmarks may run on one machine
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
LUA = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""
HUGE: dict[str, Any] = {"rpm": 10**9, "tpm": 10**12, "concurrency": 10**6, "budget": 10**9}


def limits_section(scenario: str, prefix: str) -> dict[str, Any]:
    if scenario == "limits-redis":
        return {"backend": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    return {"backend": "memory"}


def config_data(scenario: str, prefix: str, upstream_url: str, storage: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "storage": {"url": storage},
        "providers": [
            {
                "name": "up",
                "kind": "openai",
                "base_url": upstream_url,
                "api_key": "bench",
                "models": ["gpt-4o-mini"],
            }
        ],
        "limits": limits_section(scenario, prefix),
    }
    if scenario.startswith("limits"):
        data["budgets"] = {"gateway": [{"amount": 10**9, "period": "month"}]}
    return data


async def prepare_keys(storage: str, scenario: str) -> str:
    """Create the scenario's key and tenant; the secret ("" when the gateway runs open)."""
    from tollway.keys.repository import KeyRepository
    from tollway.keys.spec import KeySpec, parse_limits
    from tollway.store import LogStore

    if scenario == "open":
        return ""
    store = await LogStore.open(storage)
    try:
        repo = KeyRepository(store.db)
        if scenario == "key":
            _, secret = await repo.create(KeySpec.parse({"name": f"bench-{uuid.uuid4().hex[:6]}"}))
            return secret
        await repo.put_tenant("bench", parse_limits({"rpm": 10**9, "budget": 10**9}))
        _, secret = await repo.create(
            KeySpec.parse({"name": f"bench-{uuid.uuid4().hex[:6]}", "tenant": "bench", **HUGE})
        )
        return secret
    finally:
        await store.close()


async def drop_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match="{" + prefix + "}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- micro


async def micro_one(scenario: str, n: int, workdir: Path) -> dict[str, Any]:
    from tollway.call import Call, Endpoint, Usage
    from tollway.config import parse_config
    from tollway.keys.auth import authenticate
    from tollway.protocols.openai import OPENAI
    from tollway.server import close_runtime, open_runtime

    prefix = f"tollway-bench-{uuid.uuid4().hex[:8]}"
    storage = f"sqlite:///{workdir / (scenario + '.db')}"
    cfg = parse_config(config_data(scenario, prefix, "http://127.0.0.1:9/v1", storage))
    secret = await prepare_keys(storage, scenario)
    rt = await open_runtime(cfg, storage)
    candidates = rt.router.candidates("gpt-4o-mini")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    counter = 0

    settling: set[asyncio.Task[None]] = set()

    async def one(background_settle: bool = False) -> int:
        """Stages 1 and 3 (authenticate, admit), timed: what a response waits for. The settlement
        runs after the response, as in the pipeline's ``finally``: not timed, but its CPU counts. One
        request at a time, it runs in the background, as it does while a keep-alive client sends its
        next request."""
        nonlocal counter
        counter += 1
        call = Call(f"req_{counter}", OPENAI, Endpoint.CHAT, body, "gpt-4o-mini", False)
        call.api_key = secret
        started = time.perf_counter_ns()
        principal = await authenticate(rt, call)
        ticket = await rt.limits.admit(call, principal, candidates)
        elapsed = time.perf_counter_ns() - started
        call.usage, call.cost = Usage(input_tokens=12, output_tokens=30), 0.00002
        if background_settle and ticket is not None:
            task = asyncio.ensure_future(rt.limits.settle(call, ticket))
            settling.add(task)
            task.add_done_callback(settling.discard)
        elif ticket is not None:
            await rt.limits.settle(call, ticket)
        return elapsed

    try:
        for _ in range(min(2000, n)):  # warm-up: seeding, script loading, caches
            await one(background_settle=True)
        latencies = sorted([await one(background_settle=True) for _ in range(n)])
        while settling:
            await asyncio.gather(*settling)
        cpu0, wall0 = time.process_time(), time.perf_counter()

        async def client() -> None:  # 64 of these: 64 requests in flight, as 64 connections would make
            for _ in range(n // 64):
                await one()

        await asyncio.gather(*(client() for _ in range(64)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await close_runtime(rt)
        if scenario == "limits-redis":
            await drop_prefix(prefix)
    return {
        "p50_us": round(latencies[len(latencies) // 2] / 1000, 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 1),
        "mean_us": round(statistics.fmean(latencies) / 1000, 1),
        "cpu_us_per_request_at_64": round(cpu / (n // 64 * 64) * 1e6, 1),
        "requests_per_s_at_64": round(n // 64 * 64 / wall),
    }


def micro(n: int) -> dict[str, dict[str, Any]]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            results[scenario] = asyncio.run(micro_one(scenario, n, Path(tmp)))
            print(f"micro {scenario}: {results[scenario]}", file=sys.stderr)
    return results


# --------------------------------------------------------------------------- http


def wrk(key: str, connections: int, seconds: int) -> dict[str, Any]:
    lua = WORK_DIR / "limits.lua"
    lua.write_text(LUA)
    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        f"http://127.0.0.1:{GATEWAY_PORT}/v1/chat/completions",
    ]
    out = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        env={**os.environ, "BENCH_BODY": BODY, "BENCH_KEY": key or "none"},
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
            return result
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def http_one(scenario: str, seconds: int) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    import upstream  # bench/upstream.py: nginx answering fixed chat completions

    prefix = f"tollway-bench-{uuid.uuid4().hex[:8]}"
    db = WORK_DIR / f"{scenario}.db"
    for stale in WORK_DIR.glob(f"{scenario}.db*"):
        stale.unlink()
    storage = f"sqlite:///{db}"
    data = config_data(scenario, prefix, f"http://127.0.0.1:{upstream.JSON_PORT}/v1", storage)
    secret = asyncio.run(prepare_keys(storage, scenario))
    config = WORK_DIR / f"{scenario}.toml"
    config.write_text(_toml(data))
    log = (WORK_DIR / f"{scenario}.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "tollway",
            "start",
            "--config",
            str(config),
            "--port",
            str(GATEWAY_PORT),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while not upstream.port_open(GATEWAY_PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start; see {WORK_DIR / (scenario + '.log')}")
            time.sleep(0.05)
        wrk(secret, 64, 2)  # warm-up
        loaded = wrk(secret, 64, seconds)
        single = wrk(secret, 1, max(3, seconds // 2))
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        if scenario == "limits-redis":
            asyncio.run(drop_prefix(prefix))
    if loaded["non2xx"] or single["non2xx"]:
        raise RuntimeError(f"{scenario}: {loaded['non2xx'] + single['non2xx']} non-2xx answers")
    return {
        "rps_at_64": loaded["rps"],
        "p50_ms_at_1": round(single["p50"] / 1000, 3),
        "p99_ms_at_64": round(loaded["p99"] / 1000, 3),
    }


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    lines, tables = [], []
    for key, v in data.items():
        if isinstance(v, dict):
            tables.append((key, v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                tables.append((f"[{key}]", item))
        else:
            lines.append(f"{key} = {value(v)}")
    out = "\n".join(lines) + "\n"
    for key, table in tables:
        name = f"{prefix}{key}" if not key.startswith("[") else f"[{prefix}{key[1:-1]}]"
        out += f"\n[{name}]\n" + _toml(table, f"{prefix}{key.strip('[]')}.")
    return out


def http(seconds: int, rounds: int) -> dict[str, dict[str, Any]]:
    """Scenarios interleaved ``rounds`` times; each keeps its best run (the least disturbed by other
    work on the machine)."""
    sys.path.insert(0, str(BENCH_DIR))
    import upstream

    if not (shutil.which("wrk") and shutil.which("taskset")):
        raise RuntimeError("the http mode needs wrk and taskset (see bench/README.md)")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    upstream.JSON_PORT, upstream.SSE_PORT = UPSTREAM_PORTS
    results: dict[str, dict[str, Any]] = {}
    with upstream.Nginx(WORK_DIR):
        for _ in range(rounds):
            for scenario in SCENARIOS:
                run = http_one(scenario, seconds)
                run["load1"] = round(os.getloadavg()[0], 2)
                print(f"http {scenario}: {run}", file=sys.stderr)
                best = results.get(scenario)
                if best is None or run["rps_at_64"] > best["rps_at_64"]:
                    results[scenario] = {
                        **run,
                        "p50_ms_at_1": min(run["p50_ms_at_1"], (best or run)["p50_ms_at_1"]),
                    }
                else:
                    best["p50_ms_at_1"] = min(best["p50_ms_at_1"], run["p50_ms_at_1"])
    return results


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    out = []
    if "micro" in results:
        out += [
            "| scenario (in process) | auth + admit p50 µs | p99 µs "
            "| CPU µs/request incl. settle (64 in flight) |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {name} | {r['p50_us']} | {r['p99_us']} | {r['cpu_us_per_request_at_64']} |"
            for name, r in results["micro"].items()
        ]
    if "http" in results:
        out += [
            "",
            "| scenario (HTTP, one core) | requests/s at 64 conns | p50 ms at 1 conn | p99 ms at 64 |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {name} | {r['rps_at_64']:,.0f} | {r['p50_ms_at_1']} | {r['p99_ms_at_64']} |"
            for name, r in results["http"].items()
        ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("micro", "http", "both"), default="both")
    parser.add_argument("-n", type=int, default=20000, help="requests per micro scenario")
    parser.add_argument("--duration", type=int, default=10, help="seconds per http run")
    parser.add_argument("--rounds", type=int, default=2, help="http runs per scenario (the best is kept)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, Any] = {"started": time.time(), "load_before": load_before}
    if args.mode in ("micro", "both"):
        results["micro"] = micro(args.n)
    if args.mode in ("http", "both"):
        results["http"] = http(args.duration, args.rounds)
    results["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\nload average before {load_before[0]:.2f}, after {results['load_after'][0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

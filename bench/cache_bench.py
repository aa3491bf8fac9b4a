"""What the response cache costs and saves: hit latency and throughput, the price of a miss, memory per
cached answer, and the semantic lookup.

    python bench/cache_bench.py                       # everything (~3 minutes)
    python bench/cache_bench.py --mode http --duration 5
    python bench/cache_bench.py --mode micro

http   ``tollway start`` pinned to core 0 in front of bench/upstream.py's nginx (core 1, with wrk):
       requests/s at 64 connections and the gateway's CPU time per request during that run (steadier
       than requests/s on a busy machine); p50/p99 at 1 connection measured by the client (wrk) and
       by the gateway itself (``latency_ms`` of the scenario's log rows: request parsed → response sent).
       Scenarios:
         none        stages 4 and 5 removed from the pipeline (the gateway before the cache existed)
         off         ``cache.enabled = false``
         bypass      the defaults; the body has no temperature, so the policy skips it
         miss        every request new (a counter in the prompt): lookup, shared flight, store
         hit         one request, answered from the memory cache
         hit-stream  the same as a stream (chunks synthesized from the stored answer)
         hit-redis   answered from the Redis cache ($TOLLWAY_TEST_REDIS, else 127.0.0.1:6379; a unique prefix)
micro  in one process: memory per cached answer (tracemalloc), the lookup of a hit without HTTP, the
       whole pipeline per call for the same scenarios (an upstream that answers at once, no sockets:
       the gateway's own CPU cost, steady on a busy machine), and the semantic cache (embedding one
       prompt; searching 1k/10k/50k prompts of one group).
Prints markdown; writes bench/results/cache.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work-cache"
RESULTS = BENCH_DIR / "results" / "cache.json"
REDIS_URL = os.environ.get("TOLLWAY_TEST_REDIS") or "redis://127.0.0.1:6379/0"
PORT = 18220
SCENARIOS = ("none", "off", "bypass", "miss", "hit", "hit-stream", "hit-redis")
FIXED = '{"model":"gpt-4o-mini","temperature":0,"messages":[{"role":"user","content":"hi"}]}'
PLAIN = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
STREAM = (
    '{"model":"gpt-4o-mini-stream","temperature":0,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
)
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local unique = os.getenv("BENCH_UNIQUE") == "1"
local body = os.getenv("BENCH_BODY")
local run = tostring(os.time()) .. tostring(math.random(1, 1000000000))
local counter = 0
request = function()
  if unique then
    counter = counter + 1
    return wrk.format(nil, nil, nil, string.format(
      '{"model":"gpt-4o-mini","temperature":0,'
        .. '"messages":[{"role":"user","content":"hi %s %d"}]}',
      run, counter))
  end
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""
# Started instead of ``tollway start`` for the "none" scenario: the same gateway with stages 4 and 5
# taken out, which is the request path as it was before the cache.
WITHOUT_CACHE = """
import sys
import tollway.pipeline
from tollway.cache.lookup import NOT_CACHED

async def no_lookup(rt, call, out, pending=None):
    return NOT_CACHED

tollway.pipeline.look_up = no_lookup
from tollway.cli import main
sys.argv = ["tollway", *sys.argv[1:]]
main()
"""


def cache_section(scenario: str, prefix: str) -> str:
    if scenario == "off":
        return "[cache]\nenabled = false\n"
    if scenario in ("none", "bypass"):
        return ""
    section = '[cache]\ntemperature_policy = "cache"\n'
    if scenario == "hit-redis":
        section += f'backend = "redis"\nredis_url = "{REDIS_URL}"\nredis_prefix = "{prefix}"\n'
    return section


def config_text(scenario: str, prefix: str, storage: str, json_port: int, sse_port: int) -> str:
    return f"""
[storage]
url = "{storage}"
flush_interval = 0.5

[[providers]]
name = "nginx"
kind = "openai"
base_url = "http://127.0.0.1:{json_port}/v1"
api_key = "bench"
models = ["gpt-4o-mini"]

[[providers]]
name = "nginx-sse"
kind = "openai"
base_url = "http://127.0.0.1:{sse_port}/v1"
api_key = "bench"
models = {{ "gpt-4o-mini-stream" = "gpt-4o-mini" }}

{cache_section(scenario, prefix)}"""


def wrk(body: str, connections: int, seconds: int, *, unique: bool = False) -> dict[str, Any]:
    lua = WORK_DIR / "cache.lua"
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
        f"http://127.0.0.1:{PORT}/v1/chat/completions",
    ]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        env={**os.environ, "BENCH_BODY": body, "BENCH_UNIQUE": "1" if unique else "0"},
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            result["rps"] = round(result["requests"] / (result["duration_us"] / 1e6), 1)
            return result
    raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process: unlike requests/s, barely moved by other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_latency(db: Path, since: float, status: str) -> dict[str, float] | None:
    """p50/p99 of latency_ms over the log rows of one cache status written after ``since``."""
    deadline = time.monotonic() + 5
    values: list[float] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            values = sorted(
                v
                for (v,) in conn.execute(
                    "SELECT latency_ms FROM requests WHERE ts >= ? AND cache_status = ?", (since, status)
                )
            )
        if values:
            break
        time.sleep(0.2)
    if not values:
        return None
    return {
        "p50": round(values[len(values) // 2], 3),
        "p99": round(values[int(len(values) * 0.99)], 3),
        "n": len(values),
    }


async def drop_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match="{" + prefix + ":cache}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def http_one(scenario: str, seconds: int) -> dict[str, Any]:
    import upstream

    prefix = f"tollway-bench-{uuid.uuid4().hex[:8]}"
    db = WORK_DIR / f"{scenario}.db"
    for stale in WORK_DIR.glob(f"{scenario}.db*"):
        stale.unlink()
    config = WORK_DIR / f"{scenario}.toml"
    config.write_text(config_text(scenario, prefix, f"sqlite:///{db}", upstream.JSON_PORT, upstream.SSE_PORT))
    log = (WORK_DIR / f"{scenario}.log").open("wb")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    launcher = ["-c", WITHOUT_CACHE] if scenario == "none" else ["-m", "tollway"]
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            *launcher,
            "start",
            "--config",
            str(config),
            "--port",
            str(PORT),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    body = {"hit-stream": STREAM, "bypass": PLAIN, "none": PLAIN, "off": FIXED}.get(scenario, FIXED)
    unique = scenario == "miss"
    status = {"miss": "miss", "bypass": "bypass", "off": "bypass", "none": ""}.get(scenario, "hit")
    try:
        deadline = time.monotonic() + 30
        while not upstream.port_open(PORT):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not start; see {WORK_DIR / (scenario + '.log')}")
            time.sleep(0.05)
        wrk(body, 64, 2, unique=unique)  # warm-up (and, for hits, the one miss that fills the cache)
        cpu_before = cpu_seconds(proc.pid)
        loaded = wrk(body, 64, seconds, unique=unique)
        cpu_used = cpu_seconds(proc.pid) - cpu_before
        since = time.time()
        single = wrk(body, 1, max(3, seconds // 2), unique=unique)
        side = gateway_latency(db, since, status)
        rss_kb = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
        )
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
        if scenario == "hit-redis":
            asyncio.run(drop_prefix(prefix))
    if loaded["non2xx"] or single["non2xx"]:
        raise RuntimeError(f"{scenario}: {loaded['non2xx'] + single['non2xx']} non-2xx answers")
    return {
        "rps_at_64": loaded["rps"],
        "cpu_us_per_request": round(cpu_used / loaded["requests"] * 1e6, 1),
        "client_p50_ms_at_1": round(single["p50"] / 1000, 3),
        "client_p99_ms_at_1": round(single["p99"] / 1000, 3),
        "gateway_ms_at_1": side,
        "rss_mb": round(rss_kb / 1024, 1),
    }


def http(seconds: int) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(BENCH_DIR))
    import upstream

    # ports of our own, so this can run beside bench/run.py's nginx
    upstream.JSON_PORT, upstream.SSE_PORT = 18280, 18281
    if not (shutil.which("wrk") and shutil.which("taskset")):
        raise RuntimeError("the http mode needs wrk and taskset (see bench/README.md)")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results = {}
    with upstream.Nginx(WORK_DIR):
        for scenario in SCENARIOS:
            results[scenario] = http_one(scenario, seconds)
            print(f"http {scenario}: {results[scenario]}", file=sys.stderr)
    return results


# --------------------------------------------------------------------------- micro


def completion_body(words: int) -> bytes:
    text = " ".join(["lorem"] * words)
    return json.dumps(
        {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_0123456789",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 20, "completion_tokens": words, "total_tokens": 20 + words},
        }
    ).encode()


def memory_per_entry(n: int, words: int) -> dict[str, Any]:
    from tollway.cache.entry import Entry
    from tollway.cache.memory import MemoryStore

    store = MemoryStore(max_entries=n, max_bytes=1 << 40)
    body = len(completion_body(words))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(n):  # everything an entry holds is allocated here, as a gateway would
        store.put_now(
            f"{i:040x}",
            Entry(completion_body(words), "tenant-a", "openai", "gpt-4o-mini", 0.000123, 20, words),
            3600,
        )
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return {
        "answer_bytes": body,
        "bytes_per_entry": round(used / n),
        "overhead_per_entry": round(used / n - body),
        "accounted_per_entry": store.bytes // n,
    }


async def hit_lookup(n: int) -> dict[str, float]:
    from tollway.cache import look_up, make_cache
    from tollway.cache.entry import Entry
    from tollway.cache.key import request_key
    from tollway.call import Call, Endpoint
    from tollway.config import parse_config
    from tollway.protocols.openai import OPENAI
    from tollway.providers.base import Reply

    class Sink:
        async def reply(self, call: Call, reply: Reply) -> None: ...
        async def start_stream(self, call: Call) -> None: ...
        async def chunk(self, data: bytes) -> None: ...
        async def end_stream(self) -> None: ...
        async def stream_error(self, call: Call, error: Exception) -> None: ...
        async def error(self, call: Call, error: Exception) -> None: ...

    cfg = parse_config({"cache": {"temperature_policy": "cache"}})
    cache = make_cache(cfg)
    rt: Any = type("RT", (), {"cache": cache})()
    body = {
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    }
    first = Call("r", OPENAI, Endpoint.CHAT, body, "gpt-4o-mini", False)
    await cache.put(request_key(first).digest, Entry(completion_body(60), ""))
    times = []
    for i in range(n):
        call = Call(f"r{i}", OPENAI, Endpoint.CHAT, body, "gpt-4o-mini", False)
        started = time.perf_counter_ns()
        result = await look_up(rt, call, Sink())  # type: ignore[arg-type]
        times.append(time.perf_counter_ns() - started)
        assert result.answered
    times.sort()
    return {"p50_us": round(times[n // 2] / 1000, 1), "p99_us": round(times[int(n * 0.99)] / 1000, 1)}


async def pipeline_costs(n: int) -> dict[str, dict[str, float]]:
    """``pipeline.handle`` in process, against an upstream that answers at once and a responder that
    sends nothing: what the gateway's own code costs per call, without HTTP, sockets or other load."""
    import tempfile

    from tollway import pipeline
    from tollway.cache.lookup import NOT_CACHED
    from tollway.call import Call, Endpoint, Usage
    from tollway.config import parse_config
    from tollway.observe.sinks import Sinks
    from tollway.protocols.openai import OPENAI
    from tollway.providers.base import Reply
    from tollway.server import close_runtime, open_runtime

    answer = completion_body(20)

    class Instant:
        async def complete(self, call: Call, deployment: Any) -> Reply:
            return Reply(answer, Usage(input_tokens=20, output_tokens=20))

        async def close(self) -> None: ...

    class Sink:
        async def reply(self, call: Call, reply: Reply) -> None: ...
        async def start_stream(self, call: Call) -> None: ...
        async def chunk(self, data: bytes) -> None: ...
        async def end_stream(self) -> None: ...
        async def stream_error(self, call: Call, error: Exception) -> None: ...
        async def error(self, call: Call, error: Exception) -> None: ...

    async def no_lookup(rt: Any, call: Any, out: Any, pending: Any = None) -> Any:
        return NOT_CACHED

    real_look_up = pipeline.look_up
    providers = [
        {"name": "up", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "models": ["gpt-4o-mini"]}
    ]
    out: dict[str, dict[str, float]] = {}
    workdir = tempfile.mkdtemp(prefix="tollway-cache-bench-")
    for scenario in ("none", "off", "bypass", "miss", "hit"):
        cache = {"off": {"enabled": False}, "none": {}, "bypass": {}}.get(
            scenario, {"temperature_policy": "cache"}
        )
        cfg = parse_config({"providers": providers, "cache": cache})
        rt = await open_runtime(cfg, f"sqlite:///{workdir}/{scenario}.db", lambda p: Instant())  # type: ignore[arg-type,return-value]
        rt.sinks = Sinks()  # the gateway's own code, without the request log
        pipeline.look_up = no_lookup if scenario == "none" else real_look_up  # type: ignore[assignment]
        times = []
        for i in range(n + 1000):
            content = f"question {i}" if scenario == "miss" else "question"
            body: dict[str, Any] = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": content}],
            }
            if scenario != "bypass":
                body["temperature"] = 0
            call = Call(f"r{i}", OPENAI, Endpoint.CHAT, body, "gpt-4o-mini", False)
            started = time.perf_counter_ns()
            await pipeline.handle(rt, call, Sink())  # type: ignore[arg-type]
            if i >= 1000:  # after a warm-up
                times.append(time.perf_counter_ns() - started)
        pipeline.look_up = real_look_up
        await close_runtime(rt)
        times.sort()
        out[scenario] = {"p50_us": round(times[n // 2] / 1000, 1), "mean_us": round(sum(times) / n / 1000, 1)}
    return out


def semantic_costs() -> dict[str, Any]:
    import numpy as np

    from tollway.cache.embed import LocalEmbedder
    from tollway.cache.semantic import MemoryIndex

    embedder = LocalEmbedder()
    embedder.load()
    prompts = [f"How do I configure feature number {i} of the gateway for my team?" for i in range(300)]
    times = []
    for text in prompts:
        started = time.perf_counter()
        vector = embedder.embed_now(text)
        times.append(time.perf_counter() - started)
        assert vector is not None
    times.sort()
    out: dict[str, Any] = {
        "embed_p50_ms": round(times[len(times) // 2] * 1000, 2),
        "embed_p99_ms": round(times[int(len(times) * 0.99)] * 1000, 2),
    }
    rng = np.random.default_rng(1)
    for size in (1_000, 10_000, 50_000):
        index = MemoryIndex(max_entries=size, ttl=3600)
        vectors = rng.standard_normal((size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i in range(size):
            index._local_add("g", f"{i:040x}", "text", vectors[i], time.time() + 3600)
        query = vectors[size // 2]
        searches = []
        for _ in range(200):
            started = time.perf_counter()
            index.search("g", query, 0.97)
            searches.append(time.perf_counter() - started)
        searches.sort()
        out[f"search_{size}_p50_ms"] = round(searches[len(searches) // 2] * 1000, 3)
    return out


def micro(n: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "memory": {f"{w}_words": memory_per_entry(5_000, w) for w in (50, 300)},
        "hit_lookup": asyncio.run(hit_lookup(n)),
        "pipeline": asyncio.run(pipeline_costs(n)),
    }
    try:
        out["semantic"] = semantic_costs()
    except (ImportError, RuntimeError, OSError) as exc:  # the optional extra is not installed
        out["semantic"] = {"error": repr(exc)}
    print(f"micro: {out}", file=sys.stderr)
    return out


# --------------------------------------------------------------------------- report


def markdown(results: dict[str, Any]) -> str:
    out: list[str] = []
    if "http" in results:
        out += [
            (
                "| scenario (HTTP, gateway on one core) | requests/s at 64 conns | gateway CPU µs/request "
                "| client p50 / p99 ms at 1 conn | gateway p50 / p99 ms at 1 conn | RSS MB |"
            ),
            "|---|---|---|---|---|---|",
        ]
        for name, r in results["http"].items():
            side = r["gateway_ms_at_1"]
            side_text = "—" if side is None else f"{side['p50']} / {side['p99']}"
            out.append(
                f"| {name} | {r['rps_at_64']:,.0f} | {r['cpu_us_per_request']} "
                f"| {r['client_p50_ms_at_1']} / {r['client_p99_ms_at_1']} | {side_text} | {r['rss_mb']} |"
            )
    if "micro" in results:
        m = results["micro"]
        out += ["", "| in process | value |", "|---|---|"]
        for words, mem in m["memory"].items():
            out.append(
                f"| memory per cached answer, {words} ({mem['answer_bytes']} B of JSON) "
                f"| {mem['bytes_per_entry']:,} B (answer + {mem['overhead_per_entry']} B) |"
            )
        out.append(
            f"| stage 4 lookup of an exact hit, no HTTP (p50 / p99) | {m['hit_lookup']['p50_us']} / "
            f"{m['hit_lookup']['p99_us']} µs |"
        )
        for name, r in m["pipeline"].items():
            out.append(
                f"| whole pipeline in process, instant upstream, {name} (p50 / mean) "
                f"| {r['p50_us']} / {r['mean_us']} µs |"
            )
        s = m["semantic"]
        if "error" not in s:
            out.append(
                f"| semantic: embed one prompt, one thread (p50 / p99) | {s['embed_p50_ms']} / "
                f"{s['embed_p99_ms']} ms |"
            )
            for size in (1_000, 10_000, 50_000):
                out.append(
                    f"| semantic: search a group of {size:,} prompts (p50) | "
                    f"{s[f'search_{size}_p50_ms']} ms |"
                )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("micro", "http", "both"), default="both")
    parser.add_argument("-n", type=int, default=20000, help="lookups in the micro benchmark")
    parser.add_argument("--duration", type=int, default=10, help="seconds per http run")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[str, Any] = {"started": time.time(), "load_before": load_before}
    if args.mode in ("micro", "both"):
        results["micro"] = micro(args.n)
    if args.mode in ("http", "both"):
        results["http"] = http(args.duration)
    results["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    print(f"\nload average before {load_before[0]:.2f}, after {results['load_after'][0]:.2f} (2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

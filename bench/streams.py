"""Streamed calls: tollway against the bare stream relay, for each pair of client and upstream protocol.

Streaming is how most applications call a model and tollway's slowest path (issue 16). For each
case below, tollway and the bare relay (bench/bare_proxy.py: raw ASGI + aiohttp, bytes relayed as
they arrive) stand in front of the same nginx upstream, which answers every call with the same fixed
stream (bench/upstream.py, ``streams_config``), and are measured in paired rounds as bench/paired.py
does for whole answers: both up side by side on the gateway core, each round measuring them back to
back, bare first in odd rounds and tollway first in even ones, so the VM's drift hits both alike.
Each target, each round: requests/s at 64 connections (wrk), p50/p99 of the whole stream at one
connection (wrk), time to first byte (bench/ttfb.py's client, one keep-alive connection). Then the
instructions per stream under valgrind's callgrind, as bench/instructions.py counts them.

Cases (client → upstream):
  openai-openai        OpenAI client, OpenAI upstream: pass-through, the common case
  anthropic-anthropic  Anthropic client, Anthropic upstream: pass-through
  anthropic-openai     Anthropic client, OpenAI upstream: translated
  openai-anthropic     OpenAI client, Anthropic upstream: translated
  openai-gemini        OpenAI client, Gemini upstream: translated

The bare relay of a case relays the upstream tollway reads (it cannot translate): for a translated
case its client gets the upstream's protocol, so the difference is what tollway costs on top of
reading that stream, translation included. Each upstream stream carries the same twelve pieces of
text: OpenAI's as a role chunk and 12 text chunks, a finish chunk, a usage chunk and ``[DONE]``;
Anthropic's and Gemini's as those APIs send them (see bench/upstream.py).

Ports (its own, so it can run beside bench/run.py's 18080-18100 and the 182xx of the feature
benches): nginx 18380 (whole answer, for readiness) and 18381-18383 (OpenAI, Anthropic, Gemini
streams); bare relays 18390-18392 (one per upstream); tollway 18395. Files go to bench/.work/streams/.

    python bench/streams.py                                  # every case, ~8 minutes
    python bench/streams.py --cases openai-openai --rounds 6
    python bench/streams.py --phases paired --seconds 2      # no callgrind
    python bench/streams.py --phases instructions -n 500

Needs nginx and wrk (installed with apt-get when run as root), taskset, two cores, and valgrind for
the instructions phase (``apt-get install -y valgrind``). Writes bench/results/streams.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import glob
import http.client
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import instructions
import run
import ttfb
import upstream

WORK_DIR = run.WORK_DIR / "streams"
JSON_PORT = 18380
SSE_PORTS = {"openai": 18381, "anthropic": 18382, "gemini": 18383}
BARE_PORTS = {"openai": 18390, "anthropic": 18391, "gemini": 18392}
TOLLWAY_PORT = 18395
PHASES = ("paired", "instructions")

# The model each upstream serves under tollway; the client asks for it by the same name, so an
# OpenAI client on the OpenAI upstream is the pure pass-through case.
MODELS = {"openai": "gpt-4o", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}
NAMES = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}
CLIENT_PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
CLIENT_HEADERS: dict[str, dict[str, str]] = {"openai": {}, "anthropic": {"anthropic-version": "2023-06-01"}}
UPSTREAM_BODIES = {
    "openai": upstream.openai_long_stream_body,
    "anthropic": upstream.anthropic_stream_body,
    "gemini": upstream.gemini_stream_body,
}


def _finished(protocol: str) -> Callable[[bytes], bool]:
    """How a complete stream of ``protocol`` ends (a cut one fails the check)."""
    if protocol == "openai":
        return ttfb.ends_in_done
    if protocol == "anthropic":
        return lambda stream: b"event: message_stop" in stream[-200:]
    return lambda stream: b'"finishReason":"STOP"' in stream[stream.rstrip().rfind(b"data:") :]


@dataclass(frozen=True)
class Case:
    client: str  # the client's protocol: "openai" or "anthropic"
    upstream: str  # the upstream's protocol: "openai", "anthropic" or "gemini"

    @property
    def name(self) -> str:
        return f"{self.client}-{self.upstream}"

    @property
    def title(self) -> str:
        kind = "pass-through" if self.client == self.upstream else "translated"
        return f"{NAMES[self.client]} client → {NAMES[self.upstream]} upstream ({kind})"

    @property
    def path(self) -> str:
        return CLIENT_PATHS[self.client]

    @property
    def headers(self) -> dict[str, str]:
        return CLIENT_HEADERS[self.client]

    @property
    def body(self) -> str:
        """What an SDK sends by default for ``stream=True`` (no ``stream_options``)."""
        model = MODELS[self.upstream]
        limit = ',"max_tokens":256' if self.client == "anthropic" else ""
        return f'{{"model":"{model}"{limit},"messages":[{{"role":"user","content":"hi"}}],"stream":true}}'

    def finished(self, target: str) -> Callable[[bytes], bool]:
        """tollway answers in the client's protocol; the bare relay passes the upstream's through."""
        return _finished(self.client if target == "tollway" else self.upstream)

    def port(self, target: str) -> int:
        return TOLLWAY_PORT if target == "tollway" else BARE_PORTS[self.upstream]

    def url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port(target)}{self.path}"


CASES = {
    case.name: case
    for case in (
        Case("openai", "openai"),
        Case("anthropic", "anthropic"),
        Case("anthropic", "openai"),
        Case("openai", "anthropic"),
        Case("openai", "gemini"),
    )
}


def upstream_events(protocol: str) -> int:
    """SSE events in the upstream's fixed stream (``[DONE]`` counts: it is parsed too)."""
    return UPSTREAM_BODIES[protocol]().count("data:")


# --------------------------------------------------------------------------- the processes


def tollway_config() -> Path:
    path = WORK_DIR / "tollway.toml"
    sse = {p: f"http://127.0.0.1:{port}" for p, port in SSE_PORTS.items()}
    path.write_text(f"""# generated by bench/streams.py
[server]
host = "127.0.0.1"
port = {TOLLWAY_PORT}

[storage]
url = "sqlite:///{WORK_DIR}/streams.db"

# the whole answer, for the readiness probe only
[[providers]]
name = "nginx-json"
kind = "openai"
base_url = "http://127.0.0.1:{JSON_PORT}/v1"
api_key = "bench"
models = ["gpt-4o-mini"]

[[providers]]
name = "sse-openai"
kind = "openai"
base_url = "{sse["openai"]}/v1"
api_key = "bench"
models = ["{MODELS["openai"]}"]

[[providers]]
name = "sse-anthropic"
kind = "anthropic"
base_url = "{sse["anthropic"]}/v1"
api_key = "bench"
models = ["{MODELS["anthropic"]}"]

[[providers]]
name = "sse-gemini"
kind = "gemini"
base_url = "{sse["gemini"]}/v1beta"
api_key = "bench"
models = ["{MODELS["gemini"]}"]
""")
    return path


def make_gateways(upstreams: set[str], bare_gc: bool) -> dict[str, run.Gateway]:
    """The bare relay of each upstream in use (``bare-openai`` …) and tollway, not started."""
    command = run.tollway_command(tollway_config())
    if command is None:
        raise RuntimeError(
            "tollway has no working 'start' command (tried the venv's tollway and python -m tollway)"
        )
    home = WORK_DIR / "tollway-home"
    home.mkdir(parents=True, exist_ok=True)
    gateways = {}
    for protocol in sorted(upstreams):
        env = {
            "BARE_UPSTREAM": f"http://127.0.0.1:{JSON_PORT}",
            "BARE_STREAM_UPSTREAM": f"http://127.0.0.1:{SSE_PORTS[protocol]}",
        }
        if bare_gc:
            from tollway.server import GC_YOUNG_THRESHOLD

            env["BARE_GC_THRESHOLD"] = str(GC_YOUNG_THRESHOLD)
        port = BARE_PORTS[protocol]
        gateways[f"bare-{protocol}"] = run.Gateway(
            f"streams-bare-{protocol}", run.bare_command(port), port, env
        )
    gateways["tollway"] = run.Gateway("streams-tollway", command, TOLLWAY_PORT, {"TOLLWAY_HOME": str(home)})
    return gateways


def gateway_of(gateways: dict[str, run.Gateway], case: Case, target: str) -> run.Gateway:
    return gateways["tollway" if target == "tollway" else f"bare-{case.upstream}"]


def one_stream(case: Case, target: str) -> None:
    """One stream from ``target``; raises with what came back unless it is a complete 200."""
    conn = http.client.HTTPConnection("127.0.0.1", case.port(target), timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer bench", **case.headers}
        conn.request("POST", case.path, body=case.body, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeError(f"{case.name}, {target}: {exc!r}") from exc
    finally:
        conn.close()
    if resp.status != 200 or not case.finished(target)(body):
        raise RuntimeError(
            f"{case.name}, {target}: status {resp.status}, not a complete stream: {body[:400]!r}"
        )


# --------------------------------------------------------------------------- paired rounds


class CoreMeter:
    """Share of each core that processes other than ours used over a case: the noise in its numbers.

    On the gateway core, everything but the gateways (all of them: the idle ones cost next to
    nothing); on the load core, everything but this script, wrk and nginx (run.load_side_cpu)."""

    def __init__(self, gateways: list[run.Gateway]) -> None:
        self.gateways = gateways
        self.t0 = time.monotonic()
        self.times0 = run.cpu_times()
        self.gateway0 = sum(gw.cpu() for gw in gateways)
        self.load0 = run.load_side_cpu()

    def read(self) -> dict[str, float]:
        seconds = time.monotonic() - self.t0
        busy = run.busy_between(self.times0, run.cpu_times())
        gateway = (sum(gw.cpu() for gw in self.gateways) - self.gateway0) / seconds
        load = (run.load_side_cpu() - self.load0) / seconds
        return {
            "other_share_on_gateway_core": round(max(0.0, busy[f"cpu{run.GATEWAY_CPU}"] - gateway), 3),
            "other_share_on_load_core": round(max(0.0, busy[f"cpu{run.LOAD_CPU}"] - load), 3),
        }


def measure_target(case: Case, target: str, args: argparse.Namespace) -> dict[str, Any]:
    url = case.url(target)
    load = run.wrk(url, args.connections, args.seconds, body=case.body, headers=case.headers)
    one = run.wrk(url, 1, args.seconds, latency=True, body=case.body, headers=case.headers)
    for res in (load, one):
        if res["error_count"]:
            raise RuntimeError(f"{case.name}, {target}: errors under load: {res['errors']}")
    first = ttfb.run(
        ttfb.measure(
            url,
            args.ttfb_n,
            warmup=10,
            body=case.body.encode(),
            headers=case.headers,
            complete=case.finished(target),
        )
    )
    if first["failures"] or not first["n"]:
        raise RuntimeError(
            f"{case.name}, {target}: {first['failures']} streams failed: {first['first_failure']}"
        )
    return {
        "rps": load["rps"],
        "p50_ms": one["latency_us"]["p50"] / 1000,
        "p99_ms": one["latency_us"]["p99"] / 1000,
        "ttfb_p50_ms": first["ttfb_ms"]["p50"],
        "ttfb_p99_ms": first["ttfb_ms"]["p99"],
    }


def paired(case: Case, gateways: dict[str, run.Gateway], args: argparse.Namespace) -> dict[str, Any]:
    for target in ("bare", "tollway"):
        one_stream(case, target)
        run.wrk(case.url(target), args.connections, args.warmup, body=case.body, headers=case.headers)
    meter = CoreMeter([gateway_of(gateways, case, t) for t in ("bare", "tollway")])
    rounds = []
    for i in range(args.rounds):
        order = ("bare", "tollway") if i % 2 == 0 else ("tollway", "bare")
        got = {target: measure_target(case, target, args) for target in order}
        rounds.append(got)
        bare, toll = got["bare"], got["tollway"]
        run.log(
            f"{case.name} round {i + 1}/{args.rounds} ({order[0]} first): "
            f"requests/s bare {bare['rps']:,.0f}, tollway {toll['rps']:,.0f} "
            f"({toll['rps'] / bare['rps']:.1%}); p50 {bare['p50_ms']:.3f} / {toll['p50_ms']:.3f} ms; "
            f"TTFB p50 {bare['ttfb_p50_ms']:.3f} / {toll['ttfb_p50_ms']:.3f} ms"
        )
    return summarize(rounds) | meter.read()


def summarize(rounds: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Medians over the rounds of each target's figures, of the ratio and of the paired differences."""

    def median(values: Iterator[float]) -> float:
        return round(statistics.median(values), 4)

    keys = ("rps", "p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms")
    ratios = [r["tollway"]["rps"] / r["bare"]["rps"] for r in rounds]
    return {
        "bare": {k: median(r["bare"][k] for r in rounds) for k in keys},
        "tollway": {k: median(r["tollway"][k] for r in rounds) for k in keys},
        "rps_ratio": median(iter(ratios)),
        "rps_ratio_range": [round(min(ratios), 4), round(max(ratios), 4)],
        "added_ms": {k: median(r["tollway"][k] - r["bare"][k] for r in rounds) for k in keys[1:]},
        "rounds": rounds,
    }


# --------------------------------------------------------------------------- instructions


class Callgrind:
    """One gateway under valgrind's callgrind, its counters zeroed and dumped around a batch of streams."""

    def __init__(self, name: str, gateway: run.Gateway, out_dir: Path) -> None:
        self.name = name
        self.port = gateway.port
        self.out_dir = out_dir
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out_dir}/cg.%p",
            "--dump-instr=no",
            "--collect-jumps=no",
            *instructions._python_argv(gateway.command),
        ]
        env = {k: v for k, v in os.environ.items() if k not in run.SCRUB_ENV} | gateway.env
        self.log_path = WORK_DIR / f"{name}-callgrind.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=run.ROOT
            )

    def wait_ready(self) -> None:
        try:
            instructions._wait_ready(self.port, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{self.name} under callgrind: {exc}; see {self.log_path}") from exc

    def count(self, case: Case, target: str, n: int, warmup: int, concurrency: int) -> float:
        """Instructions per stream over ``n`` streams of ``case``, after ``warmup`` uncounted ones."""
        send(case, target, warmup, concurrency)
        subprocess.run(["callgrind_control", "-z", str(self.proc.pid)], check=True, capture_output=True)
        ok = send(case, target, n, concurrency)
        before = set(glob.glob(f"{self.out_dir}/cg.{self.proc.pid}*"))
        subprocess.run(["callgrind_control", "-d", str(self.proc.pid)], check=True, capture_output=True)
        dumps = set(glob.glob(f"{self.out_dir}/cg.{self.proc.pid}*")) - before
        if ok != n or not dumps:
            raise RuntimeError(
                f"{case.name}, {target}: {ok} of {n} streams complete; callgrind dumps {dumps}"
            )
        return sum(instructions._total(d) for d in dumps) / n

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def send(case: Case, target: str, n: int, concurrency: int) -> int:
    """``n`` streams at ``concurrency`` connections; how many came back complete."""
    finished = case.finished(target)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench", **case.headers}
    body = case.body.encode()

    async def main() -> int:
        left, ok = n, 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal left, ok
            while left > 0:
                left -= 1
                async with session.post(case.url(target), data=body, headers=headers) as resp:
                    stream = await resp.read()
                    ok += resp.status == 200 and finished(stream)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return ok

    return asyncio.run(main())


def count_instructions(
    cases: list[Case], gateways: dict[str, run.Gateway], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    out_dir = WORK_DIR / "callgrind"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        # all started at once: under valgrind, tollway takes tens of seconds to serve its first call
        grinds = {}
        for name, gw in gateways.items():
            grinds[name] = Callgrind(name, gw, out_dir)
            stack.callback(grinds[name].stop)
        for grind in grinds.values():
            grind.wait_ready()
        for case in cases:
            got: dict[str, Any] = {}
            try:
                for target in ("bare", "tollway"):
                    grind = grinds["tollway" if target == "tollway" else f"bare-{case.upstream}"]
                    got[target] = grind.count(
                        case, target, args.n, args.instructions_warmup, args.concurrency
                    )
            except (RuntimeError, aiohttp.ClientError, subprocess.CalledProcessError) as exc:
                run.log(f"{case.name} failed under callgrind: {exc}")
                results[case.name] = {"error": str(exc)}
                continue
            events = upstream_events(case.upstream)
            got["ratio"] = got["tollway"] / got["bare"]
            got["upstream_events"] = events
            got["added_per_event"] = (got["tollway"] - got["bare"]) / events
            results[case.name] = got
            run.log(
                f"{case.name}: instructions per stream bare {got['bare']:,.0f}, "
                f"tollway {got['tollway']:,.0f} "
                f"({got['ratio']:.2f}×; {got['added_per_event']:,.0f} more per upstream event)"
            )
    return results


# --------------------------------------------------------------------------- report


def log_rows() -> dict[str, int] | None:
    """tollway's request log after it stopped, by status: every stream should be there, as ok."""
    try:
        with contextlib.closing(sqlite3.connect(WORK_DIR / "streams.db")) as conn:
            rows = conn.execute("SELECT status, count(*) FROM requests GROUP BY status").fetchall()
    except sqlite3.Error:
        return None
    return {str(status): int(count) for status, count in rows}


def markdown(report: dict[str, Any]) -> str:
    lines = []
    load = report["paired"]
    if load:
        lines += [
            "| case | requests/s bare → tollway (ratio, range) | p50 ms bare → tollway (added) "
            "| p99 ms bare → tollway | TTFB p50 ms bare → tollway (added) "
            "| TTFB p99 ms bare → tollway | noise |",
            "|---|---|---|---|---|---|---:|",
        ]
        for name, res in load.items():
            if "error" in res:
                lines.append(f"| {name} | failed: {res['error'].splitlines()[0]} | | | | | |")
                continue
            b, t, add = res["bare"], res["tollway"], res["added_ms"]
            lo, hi = res["rps_ratio_range"]
            noise = max(res["other_share_on_gateway_core"], res["other_share_on_load_core"])
            lines.append(
                f"| {name} | {b['rps']:,.0f} → {t['rps']:,.0f} ({res['rps_ratio']:.2f}×, {lo:.2f}–{hi:.2f}) "
                f"| {b['p50_ms']:.3f} → {t['p50_ms']:.3f} ({add['p50_ms'] * 1000:+.0f} µs) "
                f"| {b['p99_ms']:.3f} → {t['p99_ms']:.3f} "
                f"| {b['ttfb_p50_ms']:.3f} → {t['ttfb_p50_ms']:.3f} ({add['ttfb_p50_ms'] * 1000:+.0f} µs) "
                f"| {b['ttfb_p99_ms']:.3f} → {t['ttfb_p99_ms']:.3f} | {noise:.0%} |"
            )
    counts = report["instructions"]
    if counts:
        lines += [
            "",
            "| case | instructions per stream, bare | tollway | ratio | upstream events | added per event |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, got in counts.items():
            if "error" in got:
                lines.append(f"| {name} | failed: {got['error'].splitlines()[0]} | | | | |")
                continue
            lines.append(
                f"| {name} | {got['bare']:,.0f} | {got['tollway']:,.0f} | {got['ratio']:.2f} "
                f"| {got['upstream_events']} | {got['added_per_event']:,.0f} |"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def check_tools(phases: set[str]) -> None:
    """Say what is missing before anything starts, not five minutes in."""
    if not shutil.which("taskset"):
        sys.exit("taskset (util-linux) is needed to pin processes to cores")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs at least 2 cores: one for the gateways, one for load and upstream")
    upstream.ensure_tools()  # nginx and wrk: installed when root, else a one-line exit
    if "instructions" in phases and not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        sys.exit(
            "valgrind is needed for the instructions phase: apt-get install -y valgrind "
            "(or measure without it: --phases paired)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, out of {','.join(CASES)}")
    parser.add_argument("--phases", default=",".join(PHASES), help="paired, instructions (default: both)")
    parser.add_argument("--rounds", type=int, default=4, help="paired rounds per case")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=64, help="connections of the requests/s runs")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target and case")
    parser.add_argument("--ttfb-n", type=int, default=300, help="streams per TTFB measurement")
    parser.add_argument(
        "-n", type=int, default=300, help="streams counted under callgrind per target and case"
    )
    parser.add_argument("--instructions-warmup", type=int, default=100, help="uncounted streams before those")
    parser.add_argument("--concurrency", "-c", type=int, default=8, help="connections under callgrind")
    parser.add_argument(
        "--bare-gc", action="store_true", help="give the bare relays tollway's garbage-collector setting"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each case, wait up to this many seconds for both cores to be idle",
    )
    parser.add_argument(
        "--lock-wait", type=float, default=900.0, help="seconds to wait for another benchmark"
    )
    parser.add_argument("--output", type=Path, default=run.RESULTS_DIR / "streams.json")
    args = parser.parse_args()
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if bad := set(names) - set(CASES):
        parser.error(f"unknown case(s): {', '.join(sorted(bad))}; known: {', '.join(CASES)}")
    if bad := phases - set(PHASES):
        parser.error(f"unknown phase(s): {', '.join(sorted(bad))}")
    cases = [CASES[name] for name in names]
    check_tools(phases)

    # This script, wrk, nginx and the TTFB client stay off the gateways' core.
    os.sched_setaffinity(0, {int(run.LOAD_CPU)})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally clauses stop every child
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    lock = run.take_lock(args.lock_wait)  # one benchmark at a time: they would share the cores
    (WORK_DIR / "streams.db").unlink(missing_ok=True)
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "loadavg_before": os.getloadavg()},
        "versions": run.versions(),
        "settings": vars(args) | {"output": str(args.output), "cases": names, "phases": sorted(phases)},
        "paired": {},
        "instructions": {},
    }
    started = time.monotonic()
    config = functools.partial(upstream.streams_config, json_port=JSON_PORT, sse_ports=SSE_PORTS)
    nginx = upstream.Nginx(WORK_DIR, cpu=run.LOAD_CPU, config=config, ports=(JSON_PORT, *SSE_PORTS.values()))
    try:
        nginx.start()
        run.NGINX_PID = nginx.proc.pid if nginx.proc else None
        gateways = make_gateways({case.upstream for case in cases}, args.bare_gc)
        if "paired" in phases:
            try:
                for gw in gateways.values():
                    gw.start()
                for case in cases:
                    run.log(f"=== {case.name}: {case.title}")
                    if args.quiet_wait > 0:
                        run.wait_for_quiet(args.quiet_wait)
                    try:
                        report["paired"][case.name] = paired(case, gateways, args)
                    except RuntimeError as exc:
                        run.log(f"{case.name} failed: {exc}")
                        report["paired"][case.name] = {"error": str(exc)}
            finally:
                for gw in gateways.values():
                    gw.stop()
            report["log_rows_by_status"] = log_rows()
        if "instructions" in phases:
            run.log(f"=== instructions per stream under callgrind ({args.n} streams per target and case)")
            report["instructions"] = count_instructions(cases, gateways, args)
    finally:
        nginx.stop()
        lock.close()
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    report["machine"]["loadavg_after"] = os.getloadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(
        f"\n{report['date']} · tollway {report['versions'].get('tollway_commit', '?')} · "
        f"{report['wall_seconds']} s · tollway's log by status {report.get('log_rows_by_status')} · "
        f"written to {args.output}"
    )
    failed = [*report["paired"].values(), *report["instructions"].values()]
    return 1 if any("error" in r for r in failed) else 0


if __name__ == "__main__":
    sys.exit(main())

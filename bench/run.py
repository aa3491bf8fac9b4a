"""tollway's benchmark: throughput, added latency, stream TTFB, memory and startup, against a ceiling.

    python bench/run.py                                  # everything, every target (~3 minutes)
    python bench/run.py --only rps,latency --targets direct,bare
    python bench/run.py --duration 5 --targets tollway

Targets, each answering ``POST /v1/chat/completions``:
  direct   nginx itself (bench/upstream.py): the floor, no proxy at all
  bare     bench/bare_proxy.py: raw ASGI + one pooled aiohttp session: the ceiling for Python
  tollway  ``tollway start`` with logging and cost tracking on, in front of the same nginx

CPU layout (2 cores): the proxy under test runs alone on core 0 (``taskset -c 0``); nginx, wrk, the
TTFB client and this script share core 1. Writes bench/results/latest.json and prints markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

# These sibling modules are only importable once BENCH_DIR is on sys.path, so the
# sys.path.insert above must run first.
import ttfb  # noqa: E402
import upstream  # noqa: E402

VENV_BIN = Path(sys.executable).parent
GATEWAY_CPU = "0"
LOAD_CPU = "1"
BARE_PORT = 18090
TOLLWAY_PORT = 18100
CHAT_PATH = "/v1/chat/completions"
CHAT_BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
PHASES = ("rps", "latency", "ttfb", "memory", "startup")
TARGETS = ("direct", "bare", "tollway")
TTFB_WARMUP = 20
NOISE_LIMIT = 0.10  # share of a core used by other processes above which a phase is flagged
MIN_METERED_SECONDS = 1.0
NGINX_PID: int | None = None  # the upstream's master process, once started
# Provider keys in the environment would make a gateway talk to real providers: never here.
SCRUB_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
    "GROQ_API_KEY",
    "TOGETHER_API_KEY",
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the process under test


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        kids: list[int] = []
        for task in tasks:
            kids += [int(c) for c in (task / "children").read_text().split()]
        return kids
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += _children(p)
    return tree


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per core: (all ticks, ticks busy in processes) from /proc/stat.

    irq and softirq ticks are left out of "busy": loopback networking runs there, and most of it is
    our own traffic, which no process is charged for.
    """
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *vals = line.split()
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in vals[:8])
            out[name] = (
                user + nice + system + idle + iowait + irq + softirq + steal,
                user + nice + system + steal,
            )
    return out


def busy_between(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, float]:
    busy = {}
    for name in a:
        total = b[name][0] - a[name][0]
        busy[name] = round((b[name][1] - a[name][1]) / total, 3) if total else 0.0
    return busy


def cores_busy(seconds: float = 1.0) -> dict[str, float]:
    """Share of each core that was busy over ``seconds``: other work on the machine shows up here."""
    a = cpu_times()
    time.sleep(seconds)
    return busy_between(a, cpu_times())


def load_side_cpu() -> float:
    """CPU seconds used so far on the load core by us: this script, finished children (wrk), nginx."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return own + (cpu_seconds(process_tree(NGINX_PID)) if NGINX_PID else 0.0)


class Meter:
    """CPU bookkeeping over one phase: what the gateway used, and what *other* processes used.

    On the gateway's core everything but the gateway is someone else's work (tests, builds); on the
    load core everything but this script, wrk and nginx is. Either is noise in the numbers.
    """

    def __init__(self, gateway: Gateway | None, saturated: bool = False) -> None:
        self.gateway = gateway
        self.saturated = saturated  # the gateway should be using all of its core
        self.t0 = time.monotonic()
        self.times0 = cpu_times()
        self.cpu0 = gateway.cpu() if gateway else 0.0
        self.load0 = load_side_cpu()

    def read(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.t0
        busy = busy_between(self.times0, cpu_times())
        out: dict[str, Any] = {"cores_busy": busy}
        if seconds <= 0:
            return out
        load_share = (load_side_cpu() - self.load0) / seconds
        out["other_share_on_load_core"] = round(max(0.0, busy[f"cpu{LOAD_CPU}"] - load_share), 3)
        if self.gateway is not None:
            share = (self.gateway.cpu() - self.cpu0) / seconds
            out["gateway_cpu_share"] = round(share, 3)
            out["other_share_on_gateway_core"] = round(max(0.0, busy[f"cpu{GATEWAY_CPU}"] - share), 3)
        if seconds < MIN_METERED_SECONDS:  # /proc/stat counts in 10 ms ticks: too coarse for less
            return out
        if self.gateway is not None and self.saturated:
            # Under full load only the gateway's core decides: others there, or a gateway left idle
            # (a load generator starved by others' work on its core), spoil the number.
            out["noise"] = round(max(out["other_share_on_gateway_core"], 1 - out["gateway_cpu_share"]), 3)
        else:
            out["noise"] = max(out.get("other_share_on_gateway_core", 0.0), out["other_share_on_load_core"])
        return out


def wait_for_quiet(limit: float, threshold: float = 0.15) -> dict[str, float]:
    """Sample both cores once a second until neither is busier than ``threshold`` or ``limit`` s pass."""
    deadline = time.monotonic() + limit
    while True:
        busy = cores_busy()
        if max(busy.values()) <= threshold or time.monotonic() >= deadline:
            return busy
        log(f"machine busy {busy}; waiting for quiet (up to {deadline - time.monotonic():.0f}s more)")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def chat_once(port: int, timeout: float = 2.0) -> bool:
    """One chat completion on a fresh connection; True when it is a 200 with choices in it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            CHAT_PATH,
            body=CHAT_BODY,
            headers={"Content-Type": "application/json", "Authorization": "Bearer bench"},
        )
        resp = conn.getresponse()
        body = resp.read()
        return resp.status == 200 and b'"choices"' in body
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class Gateway:
    """A proxy process pinned to the gateway core, started and stopped by us."""

    name: str
    command: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    requests_served: int = 0

    def start(self, ready_timeout: float = 60.0) -> float:
        """Spawn and wait for the first served chat completion; returns that time in ms."""
        if not port_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; is an earlier run still alive?")
        self.log_path = WORK_DIR / f"{self.name}.log"
        logfile = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k not in SCRUB_ENV}
        env.update(self.env)
        cmd = ["taskset", "-c", GATEWAY_CPU, *self.command]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT
        )
        logfile.close()
        self.requests_served = 0
        deadline = t0 + ready_timeout
        while True:
            if chat_once(self.port):
                elapsed = (time.perf_counter() - t0) * 1000
                self.requests_served += 1
                return elapsed
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before serving; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} served no chat completion within {ready_timeout:.0f}s; "
                    f"see {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.005)

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mib(self) -> dict[str, Any]:
        pids = process_tree(self.pid)
        per = {pid: rss_kib(pid) for pid in pids}
        return {
            "mib": round(sum(per.values()) / 1024, 1),
            "processes": len(pids),
            "main_mib": round(per[self.pid] / 1024, 1),
        }

    def cpu(self) -> float:
        return cpu_seconds(process_tree(self.pid))

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # SIGINT may be ignored when we run in the background
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within 15 s of SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------- load


def wrk(
    url: str,
    connections: int,
    seconds: float,
    latency: bool = False,
    body: str = CHAT_BODY,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run with chat.lua: ``body`` POSTed, ``headers`` added to its own; wrk's summary."""
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "chat.lua"),
    ]
    if latency:
        cmd.append("--latency")
    cmd.append(url)
    out = subprocess.run(
        cmd,
        check=False,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "BENCH_BODY": body,
            "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items()),
        },
        timeout=seconds + 60,
    )
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            seconds_run = result["duration_us"] / 1e6
            result["rps"] = round(result["requests"] / seconds_run, 1) if seconds_run else 0.0
            result["error_count"] = sum(result["errors"].values())
            return result
    raise RuntimeError(f"wrk printed no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


# --------------------------------------------------------------------------- targets


def write_tollway_config() -> Path:
    path = WORK_DIR / "tollway.toml"
    path.write_text(f"""# generated by bench/run.py
[server]
host = "127.0.0.1"
port = {TOLLWAY_PORT}

[storage]
url = "sqlite:///{WORK_DIR}/bench.db"

[[providers]]
name = "nginx"
kind = "openai"
base_url = "http://127.0.0.1:{upstream.JSON_PORT}/v1"
api_key = "bench"
models = ["gpt-4o-mini"]

# nginx cannot look for "stream":true in a body, so streams get their own upstream port and model name.
[[providers]]
name = "nginx-sse"
kind = "openai"
base_url = "http://127.0.0.1:{upstream.SSE_PORT}/v1"
api_key = "bench"
models = {{ "gpt-4o-mini-stream" = "gpt-4o-mini" }}
""")
    return path


def tollway_command(config: Path) -> list[str] | None:
    """``tollway start --config …`` from the venv, else ``python -m tollway``; None when neither works."""
    candidates = []
    exe = VENV_BIN / "tollway"
    if exe.exists():
        candidates.append([str(exe)])
    candidates.append([sys.executable, "-m", "tollway"])
    for base in candidates:
        try:
            probe = subprocess.run(
                [*base, "start", "--help"], check=False, capture_output=True, timeout=60, cwd=ROOT
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return [*base, "start", "--config", str(config)]
    return None


def bare_command(port: int = BARE_PORT) -> list[str]:
    """uvicorn serving bench/bare_proxy.py on ``port`` (uvloop, httptools, no access log)."""
    uvicorn = VENV_BIN / "uvicorn"
    cmd = [str(uvicorn)] if uvicorn.exists() else [sys.executable, "-m", "uvicorn"]
    return [
        *cmd,
        "--app-dir",
        str(BENCH_DIR),
        "bare_proxy:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def make_gateway(name: str) -> Gateway | None:
    if name == "bare":
        return Gateway("bare", bare_command(), BARE_PORT)
    if name == "tollway":
        command = tollway_command(write_tollway_config())
        if command is None:
            raise RuntimeError(
                "tollway has no working 'start' command yet (tried the venv's tollway and python -m tollway)"
            )
        home = WORK_DIR / "tollway-home"
        home.mkdir(parents=True, exist_ok=True)
        return Gateway("tollway", command, TOLLWAY_PORT, env={"TOLLWAY_HOME": str(home)})
    return None


def target_port(name: str) -> int:
    return {"direct": upstream.JSON_PORT, "bare": BARE_PORT, "tollway": TOLLWAY_PORT}[name]


def target_url(name: str) -> str:
    return f"http://127.0.0.1:{target_port(name)}{CHAT_PATH}"


def stream_url(name: str) -> str:
    port = upstream.SSE_PORT if name == "direct" else target_port(name)
    return f"http://127.0.0.1:{port}{CHAT_PATH}"


# --------------------------------------------------------------------------- phases


def measure_rps(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    log(f"{name}: throughput {args.duration:.0f}s at 64 connections")
    run = wrk(target_url(name), 64, args.duration)
    return {
        "rps": run["rps"],
        "requests": run["requests"],
        "seconds": round(run["duration_us"] / 1e6, 2),
        "errors": run["errors"],
        "latency_ms_p50_c64": run["latency_us"]["p50"] / 1000,
        "latency_ms_p99_c64": run["latency_us"]["p99"] / 1000,
    }, run["requests"]


def measure_latency(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    log(f"{name}: latency {args.duration:.0f}s at 1 connection")
    run = wrk(target_url(name), 1, args.duration, latency=True)
    lat = run["latency_us"]
    return {
        "p50_ms": lat["p50"] / 1000,
        "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000,
        "p999_ms": lat["p999"] / 1000,
        "mean_ms": round(lat["mean"] / 1000, 4),
        "max_ms": lat["max"] / 1000,
        "requests": run["requests"],
        "errors": run["errors"],
    }, run["requests"]


def measure_ttfb(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    log(f"{name}: stream TTFB, at least {args.ttfb_n} sequential requests and 1.5 s")
    # At least 1.5 s of requests, so that the noise meter (10 ms ticks) can judge the phase.
    res = ttfb.run(ttfb.measure(stream_url(name), args.ttfb_n, warmup=TTFB_WARMUP, min_seconds=1.5))
    return res, int(res["n"]) + int(res["failures"]) + TTFB_WARMUP


def run_target(name: str, phases: set[str], args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    url = target_url(name)
    gateway = make_gateway(name)
    served = 0
    try:
        if gateway is not None:
            gateway.start()
            served += 1
            result["pid_command"] = " ".join(gateway.command)
            if "memory" in phases:
                time.sleep(1.0)
                result["memory"] = {"idle": gateway.rss_mib()}
        elif not chat_once(target_port(name)):
            raise RuntimeError("the direct upstream does not answer")

        if "rps" in phases:
            log(f"{name}: warm-up {args.warmup:.0f}s at 64 connections")
            warm = wrk(url, 64, args.warmup)
            served += warm["requests"]
        for phase, measure in (("rps", measure_rps), ("latency", measure_latency), ("ttfb", measure_ttfb)):
            if phase not in phases:
                continue
            for attempt in range(1, args.retry_noisy + 2):
                meter = Meter(gateway, saturated=phase == "rps")
                res, count = measure(name, args)
                served += count
                res.update(meter.read(), attempts=attempt)
                share = res.get("noise") or 0.0
                if share <= NOISE_LIMIT or attempt > args.retry_noisy:
                    break
                log(
                    f"{name}: {phase} was noisy (others used {share:.0%} of a core); "
                    f"waiting for quiet and measuring again"
                )
                wait_for_quiet(30)
            result[phase] = res
        if "rps" in result:
            result["rps"]["warmup_errors"] = warm["errors"]

        if "memory" in phases and gateway is not None:
            deadline = time.monotonic() + args.memory_time_limit
            while served < args.memory_requests and time.monotonic() < deadline:
                rate = max(result.get("rps", {}).get("rps", 0.0), 300.0)
                remaining = args.memory_requests - served
                seconds = min(max(2.0, remaining / rate * 1.1 + 1), deadline - time.monotonic())
                if seconds < 1:
                    break
                log(f"{name}: memory load, {served} served so far, {seconds:.0f}s more at 64 connections")
                run = wrk(url, 64, seconds)
                served += run["requests"]
                if run["error_count"]:
                    result["memory"].setdefault("load_errors", []).append(run["errors"])
            time.sleep(1.0)
            result["memory"]["after"] = gateway.rss_mib()
            result["memory"]["requests_served"] = served
            if served < args.memory_requests:
                result["memory"]["note"] = (
                    f"time limit ({args.memory_time_limit:.0f}s) reached before "
                    f"{args.memory_requests} requests"
                )
    finally:
        if gateway is not None:
            gateway.stop()

    if "startup" in phases and gateway is not None:
        runs = []
        for i in range(args.startup_runs):
            log(f"{name}: startup run {i + 1}/{args.startup_runs}")
            runs.append(round(gateway.start(), 1))
            gateway.stop()
        result["startup"] = {"median_ms": statistics.median(runs), "runs_ms": runs}
    if name == "tollway":
        result["log_rows"] = count_log_rows()
    return result


def count_log_rows() -> int | None:
    """Rows in tollway's request log after it shut down: evidence that logging was on and flushed."""
    import sqlite3

    db = WORK_DIR / "bench.db"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM requests").fetchone()[0])
    except sqlite3.Error:
        return None


def add_deltas(results: dict[str, dict[str, Any]]) -> None:
    direct = results.get("direct", {})
    for name, res in results.items():
        if name == "direct":
            continue
        if "latency" in res and "latency" in direct:
            res["added_latency"] = {
                k: round(res["latency"][k] - direct["latency"][k], 3) for k in ("p50_ms", "p99_ms")
            }
        if "ttfb_ms" in res.get("ttfb", {}) and "ttfb_ms" in direct.get("ttfb", {}):
            res["added_ttfb"] = {
                f"{k}_ms": round(res["ttfb"]["ttfb_ms"][k] - direct["ttfb"]["ttfb_ms"][k], 3)
                for k in ("p50", "p95")
            }


# --------------------------------------------------------------------------- report


def _dig(res: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(res, dict) or key not in res:
            return None
        res = res[key]
    return res


# (heading, path into a target's results, format); a column whose values are all missing is dropped.
SPEED_COLUMNS = [
    ("req/s (64 conn)", "rps.rps", "{:,.0f}"),
    ("p50 ms (1 conn)", "latency.p50_ms", "{:.3f}"),
    ("p99 ms (1 conn)", "latency.p99_ms", "{:.3f}"),
    ("added p50 ms", "added_latency.p50_ms", "{:+.3f}"),
    ("added p99 ms", "added_latency.p99_ms", "{:+.3f}"),
    ("stream TTFB p50 ms", "ttfb.ttfb_ms.p50", "{:.3f}"),
    ("TTFB p95 ms", "ttfb.ttfb_ms.p95", "{:.3f}"),
    ("added TTFB p50 ms", "added_ttfb.p50_ms", "{:+.3f}"),
    ("added TTFB p95 ms", "added_ttfb.p95_ms", "{:+.3f}"),
    ("noise", "noise", "{:.0%}"),
]
PROCESS_COLUMNS = [
    ("RSS idle MiB", "memory.idle.mib", "{:.1f}"),
    ("RSS after load MiB", "memory.after.mib", "{:.1f}"),
    ("requests served", "memory.requests_served", "{:,}"),
    ("startup ms (median)", "startup.median_ms", "{:.0f}"),
    ("startup runs ms", "startup.runs_ms", "list"),
    ("its CPU share under load", "rps.gateway_cpu_share", "{:.0%}"),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    if fmt == "list":
        return ", ".join(f"{v:.0f}" for v in value)
    return fmt.format(value)


def _table(results: dict[str, dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    columns = [c for c in columns if any(_dig(r, c[1]) is not None for r in results.values())]
    if not columns or not results:
        return ""
    lines = ["| target | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, res in results.items():
        if "error" in res:
            lines.append(f"| {name} | failed: {res['error'].splitlines()[0]} |" + " |" * (len(columns) - 1))
            continue
        errors = [_dig(res, "rps.errors"), _dig(res, "latency.errors")]
        flag = " ⚠ errors" if any(e and sum(e.values()) for e in errors) or _dig(res, "ttfb.failures") else ""
        lines.append(f"| {name}{flag} | " + " | ".join(_cell(_dig(res, c[1]), c[2]) for c in columns) + " |")
    return "\n".join(lines)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    gateways = {name: res for name, res in results.items() if name != "direct"}
    return "\n\n".join(t for t in (_table(results, SPEED_COLUMNS), _table(gateways, PROCESS_COLUMNS)) if t)


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
        except OSError:
            return "?"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"

    info = {
        "python": platform.python_version(),
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "--version"]).split(" Copyright")[0],
        "kernel": platform.release(),
    }
    try:
        import aiohttp
        import uvicorn

        info["aiohttp"] = aiohttp.__version__
        info["uvicorn"] = uvicorn.__version__
    except ImportError:
        pass
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        info["tollway_commit"] = commit + ("+uncommitted src changes" if dirty else "")
    except OSError:
        pass
    return info


def take_lock(wait: float) -> IO[str]:
    """One benchmark at a time on this machine: two would share ports and each other's cores."""
    handle = (WORK_DIR / "run.lock").open("a+")
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.seek(0)
                sys.exit(
                    f"another bench/run.py (pid {handle.read().strip() or '?'}) is still running; "
                    f"gave up after {wait:.0f}s"
                )
            if not told:
                handle.seek(0)
                log(f"another bench/run.py (pid {handle.read().strip() or '?'}) is running; waiting for it")
                told = True
            time.sleep(1.0)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def main() -> int:
    parser = argparse.ArgumentParser(description="tollway benchmark harness (see bench/README.md)")
    parser.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"comma-separated phases out of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated targets out of {','.join(TARGETS)} (default: all)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput/latency run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before throughput")
    parser.add_argument("--ttfb-n", type=int, default=300, help="sequential stream requests for TTFB")
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=100_000,
        help="requests a gateway serves before its RSS is read again",
    )
    parser.add_argument(
        "--memory-time-limit",
        type=float,
        default=120.0,
        help="most seconds spent adding load for the memory phase",
    )
    parser.add_argument("--startup-runs", type=int, default=5)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each target, wait up to this many seconds for both cores to be idle",
    )
    parser.add_argument(
        "--retry-noisy",
        type=int,
        default=1,
        help="measure a phase again (after waiting up to 30 s for quiet) this many times "
        "when other processes used more than 10%% of the gateway's core during it",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=600.0,
        help="seconds to wait for another run of this script on the machine to finish",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run this script, nginx, wrk and the gateways at this nice value (e.g. -10 on a "
        "machine shared with other work; needs root for negative values)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args()

    phases = {p.strip() for p in args.only.split(",") if p.strip()}
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if bad := phases - set(PHASES):
        parser.error(f"unknown phase(s): {', '.join(sorted(bad))}")
    if bad := set(targets) - set(TARGETS):
        parser.error(f"unknown target(s): {', '.join(sorted(bad))}")
    if not shutil.which("taskset"):
        parser.error("taskset (util-linux) is needed to pin processes to cores")
    if os.cpu_count() is not None and os.cpu_count() < 2:  # type: ignore[operator]
        parser.error("needs at least 2 cores: one for the proxy, one for load and upstream")

    # Everything this script does itself (polling, the TTFB client) stays off the gateway's core.
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.nice:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)  # every process started below inherits it
    upstream.ensure_tools()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    lock = take_lock(args.lock_wait)
    (WORK_DIR / "bench.db").unlink(missing_ok=True)

    started = time.monotonic()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "provisional": True,
        "machine": {
            "cores": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "cores_busy_before": cores_busy(),
        },
        "versions": versions(),
        "settings": {
            "phases": sorted(phases),
            "targets": targets,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "ttfb_n": args.ttfb_n,
            "memory_requests": args.memory_requests,
            "startup_runs": args.startup_runs,
            "retry_noisy": args.retry_noisy,
            "nice": args.nice,
            "gateway_cpu": GATEWAY_CPU,
            "load_cpu": LOAD_CPU,
        },
        "targets": {},
    }
    results: dict[str, dict[str, Any]] = report["targets"]
    nginx = upstream.Nginx(cpu=LOAD_CPU)
    nginx.start()
    global NGINX_PID
    NGINX_PID = nginx.proc.pid if nginx.proc else None
    try:
        for name in targets:
            log(f"=== {name}")
            if args.quiet_wait > 0:
                report["machine"].setdefault("cores_busy_before_target", {})[name] = wait_for_quiet(
                    args.quiet_wait
                )
            try:
                results[name] = run_target(name, phases, args)
            except RuntimeError as exc:
                log(f"{name} failed: {exc}")
                results[name] = {"error": str(exc)}
    finally:
        nginx.stop()

    add_deltas(results)
    report["machine"]["loadavg_after"] = os.getloadavg()
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    noisy = []
    for name, res in results.items():
        shares = {phase: share for phase in PHASES if (share := _dig(res, f"{phase}.noise")) is not None}
        if shares:
            res["noise"] = max(shares.values())
        noisy += [f"{name} {phase} ({share:.0%})" for phase, share in shares.items() if share > NOISE_LIMIT]
    report["noisy_phases"] = noisy
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(markdown(results))
    if noisy:
        print(
            f"\nNOISY: other processes used more than {NOISE_LIMIT:.0%} of a core during: "
            f"{', '.join(noisy)}. Those numbers are not comparable; rerun on a quiet machine."
        )
    machine = report["machine"]
    print(
        f"\n{report['date']} · {report['wall_seconds']} s · load average before "
        f"{machine['loadavg_before'][0]:.2f} · cores busy in the second before "
        f"{machine['cores_busy_before']} · written to {args.output}"
    )
    lock.close()
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

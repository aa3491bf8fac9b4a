"""Instructions per request, counted by valgrind's callgrind: a repeatable measure of CPU work.

Wall-clock requests/s on a shared VM moves 10-45 % between identical runs; the number of machine
instructions a proxy executes per request does not (callgrind counts user-space instructions of
every thread, whatever else the machine is doing). It is not time: cache misses, system calls and
thread switches cost time without adding instructions. Work done per batch (the request log's
writes) is overstated: under valgrind the target serves ~50x fewer requests per second, so its
batches are smaller. Use it to compare two versions of the hot
path, and bench/run.py (wall clock) for the claims in docs/benchmarks.md.

For each target (the bare proxy, tollway) it starts nginx and the target under callgrind, sends
warm-up requests, zeroes the counters (``callgrind_control -z``), sends N requests at C concurrent
connections, dumps the counters (``callgrind_control -d``) and divides.

    python bench/instructions.py                       # bare and tollway, 2,000 requests each
    python bench/instructions.py --targets tollway -n 4000 --top 30

Needs valgrind (``apt-get install -y valgrind``), nginx and wrk (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run
import upstream

BODY = run.CHAT_BODY.encode()


async def _send(port: int, n: int, concurrency: int, stream: bool) -> int:
    url = f"http://127.0.0.1:{port}{run.CHAT_PATH}"
    body = BODY.replace(b'"gpt-4o-mini"', b'"gpt-4o-mini-stream","stream":true') if stream else BODY
    if port == run.BARE_PORT and stream:
        body = BODY.replace(b'"gpt-4o-mini"', b'"gpt-4o-mini","stream":true')
    left = n
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal left, ok
        while left > 0:
            left -= 1
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                ok += resp.status == 200

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not run.chat_once(port, timeout=30):
        if proc.poll() is not None:
            raise RuntimeError(f"target exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("target did not answer in time")
        time.sleep(0.2)


def _total(path: str) -> int:
    text = Path(path).read_text()
    m = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^totals:\s+(\d+)", text, re.MULTILINE
    )
    if not m:
        raise RuntimeError(f"no totals in {path}")
    return int(m.group(1))


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    gw = run.make_gateway(name)
    assert gw is not None
    out_dir = run.WORK_DIR / "callgrind"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/cg.%p",
        "--dump-instr=no",
        "--collect-jumps=no",
        *_python_argv(gw.command),
    ]
    env = {k: v for k, v in os.environ.items() if k not in run.SCRUB_ENV} | gw.env
    log = (run.WORK_DIR / f"{name}-callgrind.log").open("wb")
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=run.ROOT
    )
    results: dict[str, float] = {}
    try:
        _wait_ready(gw.port, proc)
        for stream in (False, True):
            if stream and not args.stream:
                continue
            asyncio.run(_send(gw.port, args.warmup, args.concurrency, stream))
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            ok = asyncio.run(_send(gw.port, args.n, args.concurrency, stream))
            before = set(glob.glob(f"{out_dir}/cg.{proc.pid}*"))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
            dumps = sorted(set(glob.glob(f"{out_dir}/cg.{proc.pid}*")) - before, key=os.path.getmtime)
            if ok != args.n or not dumps:
                raise RuntimeError(f"{name}: {ok} of {args.n} requests succeeded; dumps {dumps}")
            total = sum(_total(d) for d in dumps)
            key = "stream" if stream else "chat"
            results[key] = total / args.n
            if args.top:
                for d in dumps:
                    print(f"--- {name} {key}: {d}")
                    report = subprocess.run(
                        ["callgrind_annotate", "--threshold=100", d],
                        check=False,
                        capture_output=True,
                        text=True,
                    ).stdout
                    print("\n".join(report.splitlines()[: args.top + 25]))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return results


def _python_argv(command: list[str]) -> list[str]:
    """valgrind needs the interpreter itself, not a console script with a shebang."""
    exe = command[0]
    if exe.endswith("/tollway"):
        return [str(run.VENV_BIN / "python"), "-c", "from tollway.cli import main; main()", *command[1:]]
    if exe.endswith("/uvicorn"):
        return [str(run.VENV_BIN / "python"), "-m", "uvicorn", *command[1:]]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="bare,tollway")
    parser.add_argument("-n", type=int, default=2000, help="measured requests per mode")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", "-c", type=int, default=16)
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip streamed requests")
    parser.add_argument("--top", type=int, default=0, help="print the N costliest functions of each dump")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed: apt-get install -y valgrind")
    rows = {}
    with upstream.Nginx():
        for name in args.targets.split(","):
            rows[name] = measure(name, args)
            print(
                f"{name}: " + ", ".join(f"{k} {v:,.0f} instructions/request" for k, v in rows[name].items()),
                flush=True,
            )
    if "bare" in rows and "tollway" in rows:
        for key in rows["tollway"]:
            print(f"tollway/bare {key}: {rows['tollway'][key] / rows['bare'][key]:.2f}")


if __name__ == "__main__":
    main()

"""tollway's requests/s as a share of the bare proxy's, measured in alternating pairs.

``bench/run.py`` measures the bare proxy and tollway one after the other, ~30 s apart; on this
shared VM the machine's own speed drifts by 10-45 % over such spans, and the ratio of two such runs
moved between 57 % and 87 % for the same code. Here both proxies run side by side (both pinned to
the gateway core, only one under load at a time), and each round measures them back to back in
ABBA order, so drift hits both alike. The ratio reported is the median of the rounds' ratios.

    python bench/paired.py                   # 8 rounds of 5 s each per target, ~2 min
    python bench/paired.py --rounds 12 --seconds 4
    python bench/paired.py --bare-gc         # the bare proxy with tollway's garbage-collector setting
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run
import upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per target per round")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--bare-gc",
        action="store_true",
        help="give the bare proxy tollway's garbage-collector setting (gc.freeze() and the "
        "young-generation threshold of tollway.server.GC_YOUNG_THRESHOLD)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="default bench/results/paired.json (paired-bare-gc.json with --bare-gc)",
    )
    args = parser.parse_args()
    if args.output is None:
        args.output = run.RESULTS_DIR / ("paired-bare-gc.json" if args.bare_gc else "paired.json")

    run.WORK_DIR.mkdir(parents=True, exist_ok=True)
    lock = run.take_lock(600)
    (run.WORK_DIR / "bench.db").unlink(missing_ok=True)
    rounds: list[dict[str, float]] = []
    with upstream.Nginx(cpu=run.LOAD_CPU):
        gateways = {name: run.make_gateway(name) for name in ("bare", "tollway")}
        if args.bare_gc:
            from tollway.server import GC_YOUNG_THRESHOLD

            bare = gateways["bare"]
            assert bare is not None
            bare.env["BARE_GC_THRESHOLD"] = str(GC_YOUNG_THRESHOLD)
        try:
            for name, gw in gateways.items():
                assert gw is not None
                gw.start()
                run.wrk(run.target_url(name), args.connections, args.warmup)
            for i in range(args.rounds):
                order = ("bare", "tollway") if i % 2 == 0 else ("tollway", "bare")
                got: dict[str, float] = {}
                for name in order:
                    res = run.wrk(run.target_url(name), args.connections, args.seconds)
                    if res["error_count"]:
                        raise RuntimeError(f"{name}: errors under load: {res['errors']}")
                    got[name] = res["rps"]
                got["ratio"] = got["tollway"] / got["bare"]
                rounds.append(got)
                run.log(
                    f"round {i + 1}/{args.rounds} ({order[0]} first): bare {got['bare']:,.0f}, "
                    f"tollway {got['tollway']:,.0f} requests/s, {got['ratio']:.1%}"
                )
        finally:
            for gw in gateways.values():
                if gw is not None:
                    gw.stop()
    lock.close()
    summary = {
        "rounds": rounds,
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "ratio_range": [min(r["ratio"] for r in rounds), max(r["ratio"] for r in rounds)],
        "median_rps": {name: statistics.median(r[name] for r in rounds) for name in ("bare", "tollway")},
        "settings": vars(args) | {"output": str(args.output)},
        "versions": run.versions(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2))
    lo, hi = summary["ratio_range"]
    print(
        f"tollway / bare requests/s: median {summary['median_ratio']:.1%} over {args.rounds} rounds "
        f"(range {lo:.1%}-{hi:.1%}); median requests/s bare {summary['median_rps']['bare']:,.0f}, "
        f"tollway {summary['median_rps']['tollway']:,.0f}"
    )


if __name__ == "__main__":
    main()

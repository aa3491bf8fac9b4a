"""How often would tollway's semantic cache serve a wrong answer? A threshold sweep on Quora Question
Pairs: ``text_a`` is the cached prompt, ``text_b`` the new one, label 1 means the same question. A hit
on a label-0 pair is a wrong answer.

The 40,000 pairs (6 MB) are not in the repository: they are read from
``../shared/data/semantic-cache/qqp-pairs-dev.jsonl`` beside it when that is there, else from
``--data PATH`` (any JSON-lines file of ``{"text_a", "text_b", "label"}``; see tests/data/README.md
for their source and licence). Without them it says so and exits with status 2. The repository's
``tests/data/qqp/qqp-pairs-sample.jsonl`` holds only the 450 pairs the tests use, chosen through the
guard, so a sweep over it is a smoke test, not a measure.

    python bench/semantic_eval.py                 # all 40,000 pairs, 2 worker processes (~6-10 min)
    python bench/semantic_eval.py --sample 2000   # a seeded random sample, for a quick look
    python bench/semantic_eval.py --split         # also report the even and odd halves separately

Uses exactly what the gateway uses: ``tollway.cache.embed.LocalEmbedder`` (all-MiniLM-L6-v2, int8
ONNX) and ``tollway.cache.guard.agree``. Precision = right hits / hits; recall = right hits / label-1
pairs; false-hit rate = wrong hits / label-0 pairs. Prints markdown tables. Embeddings are kept in
``bench/.work/qqp-embeddings.npz`` so a second run only recomputes the table.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "semantic-cache" / "qqp-pairs-dev.jsonl"
WORK = ROOT / "bench" / ".work"
THRESHOLDS = (0.80, 0.85, 0.90, 0.93, 0.95, 0.96, 0.97, 0.98, 0.985, 0.99, 0.995)

_embedder: Any = None


def _init() -> None:
    global _embedder
    from tollway.cache.embed import LocalEmbedder

    _embedder = LocalEmbedder()
    _embedder.load()


def _embed(texts: list[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, text in enumerate(texts):
        vector = _embedder.embed_now(text)
        if vector is not None:  # longer than the model reads: never a semantic hit
            out[i] = vector
    return out


def load_pairs(path: Path = DATA, sample: int | None = None, seed: int = 7) -> list[dict[str, Any]]:
    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if sample is not None and sample < len(pairs):
        pairs = random.Random(seed).sample(pairs, sample)
    return pairs


def embed_pairs(pairs: list[dict[str, Any]], workers: int) -> tuple[np.ndarray, np.ndarray]:
    texts = [p["text_a"] for p in pairs] + [p["text_b"] for p in pairs]
    chunk = math.ceil(len(texts) / (workers * 8))
    parts = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    with ProcessPoolExecutor(max_workers=workers, initializer=_init) as pool:
        vectors = np.concatenate(list(pool.map(_embed, parts)))
    return vectors[: len(pairs)], vectors[len(pairs) :]


def similarities(pairs: list[dict[str, Any]], workers: int, cache: Path | None) -> np.ndarray:
    if cache is not None and cache.exists():
        saved = np.load(cache)
        if int(saved["n"]) == len(pairs):
            return np.asarray(saved["sim"])
    a, b = embed_pairs(pairs, workers)
    sim = (a * b).sum(axis=1)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, sim=sim, n=len(pairs))
    return np.asarray(sim)


def table(sim: np.ndarray, labels: np.ndarray, agree: np.ndarray | None) -> list[dict[str, float]]:
    rows = []
    for t in THRESHOLDS:
        hit = sim >= t
        if agree is not None:
            hit &= agree
        right = int((hit & (labels == 1)).sum())
        wrong = int((hit & (labels == 0)).sum())
        n = right + wrong
        rows.append(
            {
                "threshold": t,
                "hits": n,
                "precision": right / n if n else float("nan"),
                "recall": right / max(int((labels == 1).sum()), 1),
                "false_hit_rate": wrong / max(int((labels == 0).sum()), 1),
                "wrong": wrong,
            }
        )
    return rows


def interval(right: int, n: int) -> str:
    """Wilson 95% interval of a precision."""
    if n == 0:
        return "—"
    p, z = right / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{centre - half:.3f}–{centre + half:.3f}"


def markdown(title: str, rows: list[dict[str, float]]) -> str:
    out = [
        f"**{title}**",
        "",
        "| threshold | hits | precision (95% CI) | recall | false-hit rate |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        n = int(r["hits"])
        right = n - int(r["wrong"])
        prec = "—" if n == 0 else f"{r['precision']:.3f} ({interval(right, n)})"
        out.append(
            f"| {r['threshold']:.3f} | {n:,} | {prec} | {r['recall']:.3f} | {r['false_hit_rate']:.4f} |"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sample", type=int, default=None, help="a seeded random sample of this many pairs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--split", action="store_true", help="also report even and odd lines separately")
    parser.add_argument("--json", type=Path, default=None, help="write the tables here too")
    args = parser.parse_args()

    if not args.data.is_file():
        print(
            f"semantic_eval: no question pairs at {args.data}. The full Quora pairs are not part of the "
            "repository; put them there or pass --data PATH (tests/data/qqp/qqp-pairs-sample.jsonl is "
            "the tests' 450-pair sample: enough to try the script, not a measure).",
            file=sys.stderr,
        )
        return 2

    from tollway.cache.guard import agree

    pairs = load_pairs(args.data, args.sample, args.seed)
    labels = np.asarray([int(p["label"]) for p in pairs])
    cache = None if args.sample or args.data != DATA else WORK / "qqp-embeddings.npz"
    started = time.perf_counter()
    sim = similarities(pairs, args.workers, cache)
    elapsed = time.perf_counter() - started
    guard = np.asarray([agree(p["text_a"], p["text_b"]) for p in pairs])
    print(
        f"{len(pairs):,} pairs ({int(labels.sum()):,} label 1), embedded in {elapsed:.0f} s "
        f"with {args.workers} worker(s)\n",
        file=sys.stderr,
    )
    results = {"cosine": table(sim, labels, None), "cosine+guard": table(sim, labels, guard)}
    print(markdown("Cosine similarity alone", results["cosine"]) + "\n")
    print(markdown("Cosine similarity and the lexical guard (the default)", results["cosine+guard"]) + "\n")
    if args.split:
        for name, idx in (
            ("even lines", np.arange(0, len(pairs), 2)),
            ("odd lines", np.arange(1, len(pairs), 2)),
        ):
            print(markdown(f"Cosine and guard, {name}", table(sim[idx], labels[idx], guard[idx])) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Would the semantic cache serve right answers? Quora Question Pairs (``tests/data/qqp``): ``text_a``
cached, ``text_b`` asked, label 0 = a different question, so a hit on it is a wrong answer.

A fixed sample keeps this fast (about 900 embeddings): the first 300 of the 40,000 pairs whose words
the lexical guard accepts — the only pairs that can be hits at all — so the sample holds a couple of
hundred hits, and 150 label-0 pairs it rejects. The repository carries just those pairs
(``scripts/vendor-test-data.py`` cuts them out); ``bench/semantic_eval.py`` runs the full sweep over
all 40,000 pairs when they are there (docs/caching.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tollway.cache.embed import LocalEmbedder
from tollway.cache.guard import agree
from tollway.config import SemanticCacheConfig

DATA = Path(__file__).resolve().parent / "data" / "qqp" / "qqp-pairs-sample.jsonl"


def test_precision_at_the_default_threshold() -> None:
    threshold = SemanticCacheConfig().threshold
    pairs = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    assert len(pairs) == 450  # the pairs chosen below, as scripts/vendor-test-data.py picked them
    sample = [p for p in pairs if agree(p["text_a"], p["text_b"])][:300]
    embedder = LocalEmbedder()
    right = wrong = cosine_only_wrong = 0
    for pair in sample:
        a, b = embedder.embed_now(pair["text_a"]), embedder.embed_now(pair["text_b"])
        if a is None or b is None or float(a @ b) < threshold:
            continue
        if pair["label"] == 1:
            right += 1
        else:
            wrong += 1
    hits = right + wrong
    assert hits >= 150, hits
    precision = right / hits
    assert precision >= 0.97, f"precision {precision:.3f} on {hits} hits at threshold {threshold}"
    # the guard is what makes it: the same threshold without it serves wrong answers far more often
    others = [p for p in pairs if not agree(p["text_a"], p["text_b"]) and p["label"] == 0][:150]
    for pair in others:
        a, b = embedder.embed_now(pair["text_a"]), embedder.embed_now(pair["text_b"])
        if a is not None and b is not None and float(a @ b) >= threshold:
            cosine_only_wrong += 1
    assert cosine_only_wrong > 0

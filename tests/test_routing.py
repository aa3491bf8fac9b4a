"""Which deployments a model name reaches: routes, ``provider/model``, and the bound on the latter."""

from __future__ import annotations

import pytest

from tollway.config import parse_config
from tollway.errors import ModelNotFound
from tollway.providers.openai import OpenAICompatible
from tollway.routing import MAX_ADHOC, Router


def router() -> Router:
    return Router(
        parse_config(
            {
                "providers": [
                    {
                        "name": "a",
                        "kind": "openai",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key": "k",
                        "models": ["m1"],
                    },
                    {
                        "name": "b",
                        "kind": "openai",
                        "base_url": "http://127.0.0.1:9/v1",
                        "api_key": "k",
                        "models": {"m1": "b-m1"},
                        "priority": 1,
                    },
                ],
                "aliases": {"fast": ["b/b-m1"]},
            }
        ),
        OpenAICompatible,
    )


def test_routes_and_explicit_pairs() -> None:
    r = router()
    assert [(d.provider.name, d.upstream_model) for d in r.candidates("m1")] == [("a", "m1"), ("b", "b-m1")]
    assert r.candidates("fast") == [r.candidates("m1")[1]]  # the alias shares the configured deployment
    assert r.candidates("b/b-m1") == r.candidates("fast")  # so does the explicit pair
    assert r.serves("m1") and r.serves("fast") and r.serves("a/anything")
    assert not r.serves("nope") and not r.serves("zz/m1") and not r.serves("a/")
    with pytest.raises(ModelNotFound):
        r.candidates("zz/m1")


def test_invented_pairs_cannot_grow_memory_without_bound() -> None:
    r = router()
    configured = len(r.deployments())
    first = r.candidates("a/new-0")[0]
    first.begin()  # in flight: never the one evicted
    assert r.candidates("a/new-0")[0] is first  # its breaker and totals persist while it is used
    for i in range(1, MAX_ADHOC * 3):
        r.candidates(f"a/new-{i}")
    assert len(r.deployments()) == configured + MAX_ADHOC
    assert r.candidates("a/new-0")[0] is first
    assert not r.serves("a/") and r.serves("a/new-1")  # serves() creates nothing
    assert len(r.deployments()) == configured + MAX_ADHOC

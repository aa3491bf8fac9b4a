"""The gateway process's own settings: what ``tollway start`` does to the interpreter once started."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MODELS, two_provider_config

from tollway.server import GC_YOUNG_THRESHOLD, Gateway


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


async def test_a_gateway_process_of_its_own_tunes_the_collector(tmp_path: Path, restore_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gateway = Gateway(
        two_provider_config("http://127.0.0.1:9", "http://127.0.0.1:9"),
        storage=f"sqlite:///{tmp_path / 'log.db'}",
        tune_gc=True,
    )
    await gateway.startup()
    try:
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0  # what startup allocated is out of the collector's sight
        assert gateway.runtime is not None and sorted(gateway.runtime.router.models()) == sorted(MODELS)
    finally:
        await gateway.shutdown()


async def test_an_embedded_gateway_leaves_the_host_process_alone(tmp_path: Path, restore_gc: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    gateway = Gateway(
        two_provider_config("http://127.0.0.1:9", "http://127.0.0.1:9"),
        storage=f"sqlite:///{tmp_path / 'log.db'}",
    )
    await gateway.startup()
    try:
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
    finally:
        await gateway.shutdown()

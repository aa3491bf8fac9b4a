"""What a running gateway holds: built once at startup (``server.open_runtime``), shared by every
request. Every part is always there — a gateway without keys runs them open, one without limits has
a limiter with nothing to apply, one without caching a cache whose policy bypasses every call — so
no stage asks whether a part exists.

The parts are named here only to annotate them (``TYPE_CHECKING``): the modules that build them
import this one, and importing them back would tie every stage into one import cycle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cache.answers import AnswerCache
    from .config import Config
    from .dedup import Flights
    from .keys.cache import KeyCache
    from .limits.limiter import Limiter
    from .observe.sinks import Sinks
    from .pricing import Pricer
    from .routing import Router
    from .store.log import LogStore
    from .store.writer import LogWriter


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    pricer: Pricer
    store: LogStore
    writer: LogWriter  # the request log's batch writer (its sink is one of ``sinks``)
    keys: KeyCache
    limits: Limiter
    cache: AnswerCache
    flights: Flights  # calls in flight that identical calls may join (stage 5)
    sinks: Sinks  # where each finished call's event goes (accounting.finish)
    started_at: float = field(default_factory=time.time)

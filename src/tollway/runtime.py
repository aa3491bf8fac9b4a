"""What a running gateway holds: built once at startup, shared by every request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .cache.answers import AnswerCache
from .config import Config
from .keys.cache import KeyCache
from .limits.limiter import Limiter
from .pricing import Pricer
from .routing import Router
from .store.log import LogStore
from .store.writer import LogWriter


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    pricer: Pricer
    writer: LogWriter | None
    store: LogStore | None = None
    started_at: float = field(default_factory=time.time)
    keys: KeyCache | None = None  # None: no key checks (open)
    limits: Limiter | None = None  # None: no rate limits or budgets
    cache: AnswerCache | None = None  # None: no response cache, no deduplication

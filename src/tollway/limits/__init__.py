"""Rate limits and budgets (pipeline stage 3, admit): ``Limiter`` over a ``Backend`` of ledgers, in
memory (one process) or in Redis (every process of a deployment)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import Config
from ..pricing import Pricer
from .ledger import Backend
from .limiter import Limiter, Seeder, State, Ticket
from .memory import MemoryBackend

if TYPE_CHECKING:
    from ..store import LogStore

log = logging.getLogger("tollway.limits")

__all__ = [
    "Backend",
    "Limiter",
    "MemoryBackend",
    "Seeder",
    "State",
    "Ticket",
    "make_limiter",
]


def make_limiter(config: Config, pricer: Pricer, store: LogStore | None) -> Limiter:
    """The limiter ``config`` asks for; budgets are seeded from the spend already in ``store``."""
    seeder: Seeder | None = None if store is None else store.spent_since

    lc = config.limits
    if lc.backend == "redis":
        from redis.exceptions import RedisError

        from .redis import RedisBackend

        backend: Backend = RedisBackend(
            lc.redis_url, prefix=lc.redis_prefix, timeout=lc.redis_timeout, pool_size=lc.redis_pool_size
        )
        return Limiter(
            config, backend, pricer, seeder=seeder, unavailable=(RedisError, OSError, TimeoutError)
        )
    if store is not None and store.dialect == "postgresql":
        log.warning(
            'limits: the request log is shared (PostgreSQL) but limits.backend is "memory": each '
            'gateway process counts rate limits and budgets on its own. Use limits.backend = "redis" '
            "when several processes serve the same keys."
        )
    return Limiter(config, MemoryBackend(), pricer, seeder=seeder)

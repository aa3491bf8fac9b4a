"""Ledgers in this process's memory: the default, exact for one gateway process.

With several processes each would count alone, so tollway logs a warning at startup when the
request log is shared (PostgreSQL) but limits are not; use ``limits.backend = "redis"`` there.
Each method runs without awaiting, so it is atomic with respect to every other request.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

from .ledger import Check, Op, Result, Settlement

SWEEP_EVERY = 60.0  # seconds between drops of idle ledgers


class _Ledger:
    __slots__ = ("entries", "keep_until", "order", "spent", "sum")

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, int]] = {}  # id -> (expires, amount)
        self.order: deque[tuple[float, str]] = deque()  # (expires, id), oldest first
        self.sum = 0
        self.spent: int | None = None
        self.keep_until: float | None = None

    def purge(self, now: float) -> None:
        order, entries = self.order, self.entries
        while order and order[0][0] <= now:
            expires, entry = order.popleft()
            held = entries.get(entry)
            if held is not None and held[0] == expires:
                del entries[entry]
                self.sum -= held[1]

    def add(self, entry: str, amount: int, expires: float) -> None:
        self.entries[entry] = (expires, amount)
        self.order.append((expires, entry))
        self.sum += amount

    def remove(self, entry: str) -> int | None:
        held = self.entries.pop(entry, None)
        if held is None:
            return None
        self.sum -= held[1]
        if len(self.order) > 2 * len(self.entries) + 64:  # released entries pile up: compact
            self.order = deque(sorted((e, i) for i, (e, _) in self.entries.items()))
        return held[1]

    def seconds_to_free(self, need: int, now: float, ttl: float) -> float:
        freed = 0
        for expires, entry in self.order:
            held = self.entries.get(entry)
            if held is None or held[0] != expires:
                continue
            freed += held[1]
            if freed >= need:
                return max(0.0, expires - now)
        return ttl


class MemoryBackend:
    name = "memory"
    local = True

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._ledgers: dict[str, _Ledger] = {}
        self._next_sweep = clock() + SWEEP_EVERY

    def _ledger(self, name: str) -> _Ledger:
        ledger = self._ledgers.get(name)
        if ledger is None:
            ledger = self._ledgers[name] = _Ledger()
        return ledger

    async def admit(self, entry: str, checks: Sequence[Check]) -> Result:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        ledgers = [self._ledger(c.ledger) for c in checks]
        result = Result(False)
        for index, (check, ledger) in enumerate(zip(checks, ledgers, strict=True)):
            ledger.purge(now)
            used = ledger.sum
            if check.budget:
                if ledger.spent is None:
                    result.unseeded.append(index)
                used += ledger.spent or 0
            result.used.append(used)
            if result.failed < 0 and check.enforce and used + check.amount > check.limit:
                result.failed = index
        if result.unseeded:
            return result
        if result.failed >= 0:
            check, ledger = checks[result.failed], ledgers[result.failed]
            if not check.budget:
                need = result.used[result.failed] + check.amount - check.limit
                result.retry_after = ledger.seconds_to_free(need, now, check.ttl)
            return result
        result.admitted = True
        for index, (check, ledger) in enumerate(zip(checks, ledgers, strict=True)):
            ledger.add(entry, check.amount, now + check.ttl)
            ledger.keep_until = check.keep_until
            result.used[index] += check.amount
        return result

    async def settle(self, entry: str, settlements: Sequence[Settlement]) -> None:
        for s in settlements:
            ledger = self._ledgers.get(s.ledger)
            if ledger is None:
                continue
            if s.op is Op.SET:
                held = ledger.entries.get(entry)
                if held is not None:
                    ledger.entries[entry] = (held[0], s.value)
                    ledger.sum += s.value - held[1]
                continue
            ledger.remove(entry)
            if s.op is Op.SPEND and ledger.spent is not None:
                ledger.spent += s.value

    async def seed(self, ledger: str, spent: int, keep_until: float | None) -> None:
        held = self._ledger(ledger)
        if held.spent is None:
            held.spent = spent
            held.keep_until = keep_until

    async def read(self, ledger: str) -> tuple[int | None, int]:
        held = self._ledgers.get(ledger)
        if held is None:
            return None, 0
        held.purge(self._clock())
        return held.spent, held.sum

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_EVERY
        for name, ledger in list(self._ledgers.items()):
            ledger.purge(now)
            if not ledger.entries and (ledger.spent is None or (ledger.keep_until is not None
                                                                 and ledger.keep_until <= now)):
                del self._ledgers[name]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._ledgers.clear()

"""Ledgers in this process's memory: the default, exact for one gateway process.

With several processes each would count alone, so tollway logs a warning at startup when the
request log is shared (PostgreSQL) but limits are not; use ``limits.backend = "redis"`` there.
Each method runs without awaiting, so it is atomic with respect to every other request.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence

from .ledger import Check, Op, Result, Settlement

SWEEP_EVERY = 60.0  # seconds between drops of idle ledgers


class _Ledger:
    """Entries in arrays, oldest first: a busy window holds a minute of requests, and an object per
    entry would give Python's garbage collector hundreds of thousands of objects to scan on every
    full collection (arrays of numbers are not scanned at all). ``index`` maps a live entry's id to
    its position; a removed entry's amount becomes 0 and its id leaves ``index``."""

    __slots__ = ("amounts", "base", "expires", "head", "ids", "index", "keep_until", "spent", "sum")

    def __init__(self) -> None:
        self.expires = array("d")
        self.amounts = array("q")
        self.ids: list[str] = []
        self.index: dict[str, int] = {}  # id -> absolute position (position in the arrays + base)
        self.head = 0  # first live position in the arrays
        self.base = 0  # absolute position of the arrays' element 0
        self.sum = 0
        self.spent: int | None = None
        self.keep_until: float | None = None

    def purge(self, now: float) -> None:
        expires, head = self.expires, self.head
        end = len(expires)
        while head < end and expires[head] <= now:
            entry = self.ids[head]
            if self.index.get(entry) == head + self.base:
                del self.index[entry]
                self.sum -= self.amounts[head]
            head += 1
        self.head = head
        if head > 1024 and head * 2 > end:  # drop the expired prefix now and then
            del self.expires[:head], self.amounts[:head], self.ids[:head]
            self.base += head
            self.head = 0

    def add(self, entry: str, amount: int, expires: float) -> None:
        self.index[entry] = len(self.expires) + self.base
        self.expires.append(expires)
        self.amounts.append(amount)
        self.ids.append(entry)
        self.sum += amount

    def remove(self, entry: str) -> int | None:
        at = self.index.pop(entry, None)
        if at is None:
            return None
        at -= self.base
        amount = self.amounts[at]
        self.amounts[at] = 0
        self.sum -= amount
        if (len(self.expires) - self.head) > 2 * len(self.index) + 64:
            self._compact()  # released entries pile up (leases, reservations): keep the live ones
        return amount

    def _compact(self) -> None:
        live = [
            at for at in range(self.head, len(self.expires)) if self.index.get(self.ids[at]) == at + self.base
        ]
        self.expires = array("d", (self.expires[at] for at in live))
        self.amounts = array("q", (self.amounts[at] for at in live))
        self.ids = [self.ids[at] for at in live]
        self.base += len(self.index) + 10**9  # fresh absolute positions, never equal to an old one
        self.head = 0
        self.index = {entry: i + self.base for i, entry in enumerate(self.ids)}

    def set(self, entry: str, amount: int) -> None:
        at = self.index.get(entry)
        if at is not None:
            at -= self.base
            self.sum += amount - self.amounts[at]
            self.amounts[at] = amount

    def seconds_to_free(self, need: int, now: float, ttl: float) -> float:
        freed = 0
        for at in range(self.head, len(self.expires)):
            freed += self.amounts[at]
            if freed >= need:
                return max(0.0, self.expires[at] - now)
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
                ledger.set(entry, s.value)
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
            if not ledger.index and (
                ledger.spent is None or (ledger.keep_until is not None and ledger.keep_until <= now)
            ):
                del self._ledgers[name]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._ledgers.clear()

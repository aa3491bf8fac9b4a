"""The one primitive both limit backends implement: ledgers of expiring entries.

Every limit is a *ledger*: a set of entries (request id → amount), each expiring ``ttl`` seconds
after it was written, and a cap on the sum of the live entries.

- requests per minute: one entry of 1 per request, living 60 s (a sliding window, exact);
- tokens per minute: one entry per request of its estimated tokens, living 60 s, corrected to the
  real count after the call (``Op.SET``);
- concurrency: one entry of 1 per request in flight, removed when it ends (``Op.RELEASE``), or
  after ``limits.lease_ttl`` if its process died;
- a budget: one entry per call in flight holding its *reservation* (the most it may cost), and a
  ``spent`` total; the cap is on spent + reservations. Settling removes the reservation and adds
  the real cost to ``spent`` (``Op.SPEND``). A reservation left behind by a dead process expires
  after ``limits.lease_ttl``. ``spent`` starts unset: the first admission that finds it unset gets
  ``Result.unseeded`` back, and the caller seeds it from the request log and tries again.

``Backend.admit`` checks every ledger of one request and records it in all of them, or in none, in
one atomic step (one Lua script on Redis, one synchronous block in memory): so N concurrent
admissions can never all see the same free room. Amounts are integers (requests, tokens,
nano-dollars) so sums are exact on both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Check:
    ledger: str  # its name, e.g. "r:key:key_0123" (the backend adds its prefix)
    limit: int
    amount: int
    ttl: float  # seconds each entry lives
    budget: bool = False  # the cap covers spent + entries, and spent must be seeded first
    enforce: bool = True  # False: record and report, never refuse (a "warn" budget)
    keep_until: float | None = None  # unix time after which the whole ledger may be dropped


class Op(StrEnum):
    SET = "set"  # change the entry's amount (if it still lives)
    RELEASE = "release"  # remove the entry
    SPEND = "spend"  # remove the entry and add ``value`` to spent (if spent is seeded)


@dataclass(frozen=True, slots=True)
class Settlement:
    ledger: str
    op: Op
    value: int = 0
    keep_until: float | None = None


@dataclass(slots=True)
class Result:
    admitted: bool
    failed: int = -1  # index of the first enforced check that had no room
    retry_after: float = 0.0  # seconds until that check's ledger frees enough (not for budgets)
    used: list[int] = field(default_factory=list)  # per check: the ledger's sum (+ spent) with this request
    unseeded: list[int] = field(default_factory=list)  # budget checks whose spent is unset


class Backend(Protocol):
    name: str
    local: bool  # True: in this process, without I/O (every call completes without suspending)

    async def admit(self, entry: str, checks: Sequence[Check]) -> Result:
        """Record ``entry`` in every ledger if each enforced check has room; otherwise in none."""

    async def settle(self, entry: str, settlements: Sequence[Settlement]) -> None: ...

    async def seed(self, ledger: str, spent: int, keep_until: float | None) -> None:
        """Set a budget ledger's spent unless it is already set (another process got there first)."""

    async def read(self, ledger: str) -> tuple[int | None, int]:
        """A ledger's (spent, sum of live entries), for reports and tests."""

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


NANO = 1_000_000_000


def nanos(dollars: float) -> int:
    return round(dollars * NANO)
